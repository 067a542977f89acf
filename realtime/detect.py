"""The 2D stage: MediaPipe PoseLandmarker in VIDEO mode -> Pose2D (33 landmarks in pixels).

MediaPipe objects never leave this module. Timestamps given to MediaPipe are strictly increasing
milliseconds derived from the frame's source time; a non-increasing time is nudged forward.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import tempfile
import weakref
import zipfile
from pathlib import Path

import cv2
import numpy as np

from posits.models import manifest
from posits.models.manifest import ModelError
from posits.models.skeleton import MIRROR
from .buffers import Buffers
from .types import Pose2D

log = logging.getLogger(__name__)

#: Detectors not yet closed: closed at interpreter exit, before MediaPipe's modules are torn
#: down (MediaPipe's own __del__ then fails with a traceback).
_OPEN: "weakref.WeakSet[PoseDetector]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for detector in list(_OPEN):
        detector.close()


@contextlib.contextmanager
def _native_stderr_captured():
    """Capture what MediaPipe's C++ side (LiteRT, glog) writes to fd 2 while loading/closing.

    It prints dozens of INFO/WARNING lines per model load; posits keeps stderr for one-line
    errors. The captured text is yielded back (a list filled on exit) and logged at DEBUG, so
    ``--verbose`` still shows it. Python-level writes to sys.stderr are unaffected only if they
    are flushed first, so this is used around short native calls only.
    """
    captured: list[str] = []
    if log.isEnabledFor(logging.DEBUG):
        yield captured
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # stderr replaced (e.g. pytest capture)
        fd = 2
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))
    for line in captured[0].splitlines():
        log.debug("mediapipe: %s", line)


def _check_task_file(path: Path) -> None:
    """Cheap checks before handing the file to MediaPipe, so errors are one clear line."""
    if not path.is_file():
        raise ModelError(f"pose model not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            bad = zf.testzip()
    except zipfile.BadZipFile:
        raise ModelError(f"pose model is not a MediaPipe .task bundle, or it is truncated: {path}") from None
    except (OSError, EOFError) as exc:
        raise ModelError(f"pose model is unreadable or corrupt: {path} ({exc})") from None
    if bad is not None:
        raise ModelError(f"pose model is corrupt (bad member {bad}): {path}")
    if not {"pose_detector.tflite", "pose_landmarks_detector.tflite"} <= names:
        raise ModelError(f"not a PoseLandmarker bundle (missing pose_detector/pose_landmarks_detector): {path}")


#: Parts whose left/right labels MediaPipe may swap on their own (left-side indices).
SWAP_PARTS: tuple[tuple[int, ...], ...] = (
    tuple(range(33)),              # the whole body (person facing away, turning)
    (25, 27, 29, 31),              # the lower legs (walking side-on: knees, ankles, feet)
    (13, 15, 17, 19, 21),          # the forearms and hands
)


class SwapGuard:
    """Undo MediaPipe's brief left/right label swaps, of the whole body or of one pair of limbs.

    MediaPipe sometimes labels a person's left side as right for a frame or a few (when they
    face away or turn, and for the legs when walking side-on). Real motion is continuous:
    between consecutive frames joints move a little, so when relabelling a part left<->right
    fits the previous frame much better (``ratio``) than the labels as given, the part's labels
    are swapped back. Forgets the previous frame when the person is lost.
    """

    def __init__(self, ratio: float = 0.5):
        self.ratio = ratio
        self._prev: np.ndarray | None = None
        self.swaps_fixed = 0
        self._perms = []
        for part in SWAP_PARTS:
            perm = np.arange(33)
            idx = np.array(sorted(set(part) | {int(MIRROR[i]) for i in part}))
            perm[idx] = MIRROR[idx]
            self._perms.append((idx, perm))

    def reset(self) -> None:
        self._prev = None

    def __call__(self, pose: Pose2D | None) -> Pose2D | None:
        if pose is None:
            self._prev = None
            return None
        if self._prev is not None:
            keep, swap = self._moves(pose.keypoints)
            for idx, perm in self._perms:
                if swap[idx].sum() < self.ratio * keep[idx].sum():
                    world = pose.world[perm] if pose.world is not None else None
                    pose = Pose2D(keypoints=pose.keypoints[perm], world=world)
                    self.swaps_fixed += 1
                    keep, swap = self._moves(pose.keypoints)
        self._prev = pose.keypoints[:, :2].copy()
        return pose

    def _moves(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(33,) distances from each landmark's previous position to where it is now as
        labelled, and to where its left/right mirror landmark is now (the move if swapped)."""
        xy = keypoints[:, :2]
        keep = xy - self._prev
        swap = xy[MIRROR] - self._prev
        return np.sqrt((keep * keep).sum(axis=1)), np.sqrt((swap * swap).sum(axis=1))


def _import_mediapipe():
    """Import MediaPipe's vision tasks without letting it load TensorFlow.

    mediapipe imports TensorFlow whenever it is installed (only for documentation decorators).
    TensorFlow's bundled LLVM clashes with Mesa's, which crashes offscreen rendering in the same
    process, and it costs seconds at start-up. Marking the module as absent while mediapipe
    loads makes mediapipe fall back to its no-op stand-ins.
    """
    blocked = "tensorflow" not in sys.modules
    if blocked:
        sys.modules["tensorflow"] = None        # import tensorflow -> ModuleNotFoundError
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions
    finally:
        if blocked:
            del sys.modules["tensorflow"]
    return mp, vision, BaseOptions


class PoseDetector:
    """MediaPipe PoseLandmarker (VIDEO mode) returning the 33 landmarks of each person in pixels.

    Args:
        model_path: a PoseLandmarker ``.task`` bundle; default: the one shipped in models/.
        num_poses: how many people to look for (results sorted as MediaPipe returns them).
        min_confidence: detection / presence / tracking confidence threshold.
        fix_swaps: undo brief left/right label swaps of the first person (see SwapGuard).

    Use as a context manager (or call ``close()``): MediaPipe's graph must be closed.
    """

    def __init__(self, model_path: str | Path | None = None, num_poses: int = 1,
                 min_confidence: float = 0.5, fix_swaps: bool = True):
        path = Path(model_path) if model_path else manifest.shipped_file("pose_landmarker")
        _check_task_file(path)
        mp, vision, BaseOptions = _import_mediapipe()
        self._mp = mp
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO,
            num_poses=int(num_poses),
            min_pose_detection_confidence=min_confidence,
            min_pose_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        try:
            with _native_stderr_captured():
                self._landmarker = vision.PoseLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"MediaPipe cannot load pose model {path}: {first}") from None
        self.model_path = path
        self._last_ms = -1
        self._first_call = True
        self._buffers = Buffers()
        self._swap_guard = SwapGuard() if fix_swaps else None
        _OPEN.add(self)

    def detect(self, image_bgr: np.ndarray, t_seconds: float) -> list[Pose2D]:
        """All people found in one BGR frame (H, W, 3) uint8 at source time ``t_seconds``."""
        if self._landmarker is None:
            raise RuntimeError("PoseDetector is closed")
        h, w = image_bgr.shape[:2]
        # 30x faster than [..., ::-1] + copy; mp.Image copies the pixels, so one buffer serves
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB, dst=self._buffers.get("rgb", image_bgr.shape))
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        ms = max(int(round(t_seconds * 1000.0)), self._last_ms + 1)
        self._last_ms = ms
        if self._first_call:        # the first inference logs native warnings once
            self._first_call = False
            with _native_stderr_captured():
                result = self._landmarker.detect_for_video(image, ms)
        else:
            result = self._landmarker.detect_for_video(image, ms)
        poses = []
        for i, person in enumerate(result.pose_landmarks):
            kp = np.array([[lm.x * w, lm.y * h, lm.visibility if lm.visibility is not None else 0.0]
                           for lm in person], dtype=np.float32)
            world = None
            if i < len(result.pose_world_landmarks):
                world = np.array([[lm.x, lm.y, lm.z] for lm in result.pose_world_landmarks[i]],
                                 dtype=np.float32)
            poses.append(Pose2D(keypoints=kp, world=world))
        return poses

    def __call__(self, image_bgr: np.ndarray, t_seconds: float) -> Pose2D | None:
        """The first person found, or None when nobody is in view."""
        poses = self.detect(image_bgr, t_seconds)
        pose = poses[0] if poses else None
        return self._swap_guard(pose) if self._swap_guard is not None else pose

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None:
            landmarker, self._landmarker = self._landmarker, None
            with _native_stderr_captured():
                landmarker.close()

    def __enter__(self) -> "PoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


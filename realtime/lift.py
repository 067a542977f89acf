"""The 3D stages: ONNX CNN lifter and streaming ONNX LSTM smoother, and ``lift_sequence``.

ONNX contract (written by ``posits-train export``, described in models/manifest.json):

lifter    input  ``keypoints`` (N, W, 33, 3) float32: the last W frames of normalized 2D
                 (models/normalize.normalize_2d), oldest first, the current frame last
          output ``pose``      (N, 33, 3) float32: normalized root-relative 3D
smoother  inputs ``pose_in`` (N, 33, 3) lifter output, ``keypoints`` (N, 33, 3) current
                 normalized 2D, and state: ``h_in``, ``c_in`` (N, U) LSTM state, ``y_in``,
                 ``v_in`` (N, 33, 3) previous refined pose and its velocity
          outputs ``pose`` (N, 33, 3) refined pose and the next state ``h_out``, ``c_out``,
                 ``y_out``, ``v_out``. State starts at zero, except ``y_in`` = the first pose_in.

W and U are read from the ONNX sessions themselves. ONNX Runtime never leaves this module.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import numpy as np

from posits.models import manifest
from posits.models.manifest import ModelError
from posits.models.normalize import denormalize_3d, normalize_2d
from posits.models.skeleton import (KINEMATIC_TREE, LEFT_SHOULDER, NUM_LANDMARKS,
                                    RIGHT_SHOULDER, hip_center)
from .types import Pose2D, Pose3D


class OnnxModel:
    """One ONNX Runtime session on the CPU: named inputs in, named outputs out.

    Args:
        path: the .onnx file.
        threads: intra-op threads (the live loop shares 2 cores with MediaPipe: default 1).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:    # onnxruntime raises its own Fail/InvalidProtobuf types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"cannot load ONNX model {path}: {first}") from None
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


def _require(model: OnnxModel, role: str, inputs: set[str], outputs: set[str]) -> None:
    if not inputs <= set(model.inputs) or not outputs <= set(model.outputs):
        raise ModelError(f"{role} model has inputs {sorted(model.inputs)} and outputs "
                         f"{sorted(model.outputs)}; expected {sorted(inputs)} -> {sorted(outputs)}")


class Lifter:
    """Normalized 2D window -> root-relative 3D (the CNN lifter). Keeps the last W frames.

    ``__call__(keypoints_2d)`` takes one frame's (33, 3) pixels + visibility and returns the
    normalized 3D pose (33, 3); ``reset()`` forgets the history (after a gap).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.model = OnnxModel(path, threads)
        _require(self.model, "lifter", {"keypoints"}, {"pose"})
        shape = self.model.inputs["keypoints"]
        if len(shape) != 4 or not isinstance(shape[1], int) or tuple(shape[2:]) != (NUM_LANDMARKS, 3):
            raise ModelError(f"lifter input 'keypoints' has shape {shape}; expected (N, W, 33, 3)")
        self.window = int(shape[1])
        self._history: deque[np.ndarray] = deque(maxlen=self.window)

    def reset(self) -> None:
        self._history.clear()

    def __call__(self, normalized_2d: np.ndarray) -> np.ndarray:
        """(33, 3) normalized 2D of the current frame -> (33, 3) normalized 3D."""
        if not self._history:       # a new track: pad the window with its first frame
            self._history.extend([normalized_2d] * self.window)
        else:
            self._history.append(normalized_2d)
        window = np.stack(self._history)[None].astype(np.float32)
        return self.model(keypoints=window)["pose"][0]


class Smoother:
    """The streaming smoother: one step per frame, its recurrent state carried here explicitly.

    Every smoother input other than ``pose_in`` and ``keypoints`` is state: ``<name>_in`` is
    fed the previous step's ``<name>_out``. At a track start all state is zero except ``y_in``
    (the previous refined pose), which starts at the lifter's first pose.

    ``update(pose, normalized_2d)`` returns the refined normalized pose; ``reset()`` starts a
    new track (call it when the person is lost).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.model = OnnxModel(path, threads)
        _require(self.model, "smoother", {"pose_in", "keypoints", "h_in", "c_in"},
                 {"pose", "h_out", "c_out"})
        self.state_names = [n for n in self.model.inputs if n not in ("pose_in", "keypoints")]
        self._shapes = {}
        for name in self.state_names:
            shape = self.model.inputs[name]
            if not name.endswith("_in") or name[:-3] + "_out" not in self.model.outputs:
                raise ModelError(f"smoother state input {name} has no matching output {name[:-3]}_out")
            if not all(isinstance(d, int) for d in shape[1:]):
                raise ModelError(f"smoother state {name} has no fixed size: {shape}")
            self._shapes[name] = (1, *shape[1:])
        self.units = int(self.model.inputs["h_in"][-1])
        self.reset()

    def reset(self) -> None:
        self._state: dict[str, np.ndarray] | None = None

    def update(self, pose: np.ndarray, normalized_2d: np.ndarray) -> np.ndarray:
        pose = pose[None].astype(np.float32, copy=False)
        if self._state is None:
            self._state = {n: np.zeros(s, np.float32) for n, s in self._shapes.items()}
            if "y_in" in self._state:
                self._state["y_in"] = pose.copy()
        out = self.model(pose_in=pose, keypoints=normalized_2d[None].astype(np.float32, copy=False),
                         **self._state)
        self._state = {n: out[n[:-3] + "_out"] for n in self.state_names}
        return out["pose"][0]


def _tree_levels():
    """KINEMATIC_TREE grouped by depth: [(children, parents), ...] as index arrays into a
    35-row array (33 landmarks, then hip mid at 33 and shoulder mid at 34)."""
    slot = lambda j: j if j >= 0 else NUM_LANDMARKS - 1 - j   # -1 -> 33, -2 -> 34  # noqa: E731
    depth = {-1: 0}
    for child, parent, _ in KINEMATIC_TREE:
        depth[child] = depth[parent] + 1
    levels = []
    for d in range(1, max(depth.values()) + 1):
        pairs = [(slot(c), slot(p)) for c, p, _ in KINEMATIC_TREE if depth[c] == d]
        levels.append((np.array([c for c, _ in pairs]), np.array([p for _, p in pairs])))
    return levels


class BoneLengthFilter:
    """Keeps every bone of a tracked person at one length: directions from each frame's pose,
    lengths from a running average over the track.

    Real bones do not stretch, but a per-frame lifter's bone lengths wobble. Each frame is
    rebuilt along the kinematic tree (models/skeleton.KINEMATIC_TREE) from the hip midpoint,
    every bone keeping the direction it has in the frame and taking the person's estimated
    length: the mean over the track so far, then an exponential average over about
    ``memory`` frames. No lag is added (directions are the frame's own). ``reset()`` when the
    person is lost.
    """

    def __init__(self, memory: int = 300):
        self.memory = memory
        self._levels = _tree_levels()
        self._children = np.concatenate([c for c, _ in self._levels])
        self._parents = np.concatenate([p for _, p in self._levels])
        self.reset()

    def reset(self) -> None:
        self._lengths: np.ndarray | None = None
        self._n = 0

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """(33, 3) root-relative pose -> (33, 3) with the track's bone lengths."""
        pts = np.empty((NUM_LANDMARKS + 2, 3), np.float32)
        pts[:NUM_LANDMARKS] = xyz
        pts[NUM_LANDMARKS] = hip_center(xyz)
        pts[NUM_LANDMARKS + 1] = 0.5 * (xyz[LEFT_SHOULDER] + xyz[RIGHT_SHOULDER])
        vec = pts[self._children] - pts[self._parents]
        length = np.linalg.norm(vec, axis=1)
        self._n += 1
        w = max(1.0 / self._n, 1.0 / self.memory)
        self._lengths = length if self._lengths is None else (1 - w) * self._lengths + w * length
        unit = vec / np.maximum(length, 1e-6)[:, None]
        out = pts.copy()
        out[NUM_LANDMARKS] = 0.0
        start = 0
        for children, parents in self._levels:
            stop = start + len(children)
            out[children] = out[parents] + unit[start:stop] * self._lengths[start:stop, None]
            start = stop
        return out[:NUM_LANDMARKS]


class PoseLifter:
    """The whole 3D stage for one person: Pose2D -> Pose3D, lifter then (optionally) LSTM.

    Args:
        models_dir: folder with manifest.json, lifter and smoother (default: shipped models/).
        use_lstm: False runs the lifter alone.
        threads: ONNX Runtime intra-op threads per model.
        bones: keep bone lengths constant over a track (BoneLengthFilter), after the LSTM.

    Loading checks each file against the manifest (sha256, normalization version).
    ``timings`` holds the last call's milliseconds for "lift" (normalization + CNN) and "lstm"
    (LSTM step + bone-length filter).
    """

    def __init__(self, models_dir: str | Path | None = None, use_lstm: bool = True, threads: int = 1,
                 bones: bool = True):
        lifter_path, self.lifter_entry = manifest.resolve("lifter", models_dir)
        self.lifter = Lifter(lifter_path, threads)
        self.smoother = None
        if use_lstm:
            smoother_path, self.smoother_entry = manifest.resolve("smoother", models_dir)
            self.smoother = Smoother(smoother_path, threads)
        self.bones = BoneLengthFilter() if bones else None
        self.timings: dict[str, float] = {}

    def reset(self) -> None:
        self.lifter.reset()
        if self.smoother is not None:
            self.smoother.reset()
        if self.bones is not None:
            self.bones.reset()

    def __call__(self, pose2d: Pose2D | None) -> Pose3D | None:
        """The 3D pose for this frame, or None (and a reset) when there is no person."""
        if pose2d is None:
            self.reset()
            self.timings = {"lift": 0.0, "lstm": 0.0}
            return None
        t0 = time.perf_counter()
        x = normalize_2d(pose2d.keypoints)
        y = self.lifter(x)
        t1 = time.perf_counter()
        if self.smoother is not None:
            y = self.smoother.update(y, x)
        xyz = denormalize_3d(y)
        if self.bones is not None:
            xyz = self.bones(xyz)
        t2 = time.perf_counter()
        self.timings = {"lift": 1e3 * (t1 - t0), "lstm": 1e3 * (t2 - t1)}
        return Pose3D(xyz=xyz.astype(np.float32, copy=False))


def lift_sequence(keypoints_2d: np.ndarray, image_size: tuple[int, int], fps: float = 30.0,
                  models_dir: str | Path | None = None, use_lstm: bool = True,
                  bones: bool = True) -> np.ndarray:
    """Lift a sequence of 2D keypoints to 3D with the shipped ONNX models, frame by frame.

    Args:
        keypoints_2d: (T, 33, 3) float: x, y in pixels and visibility; NaN rows for frames
            with no person.
        image_size: (width, height) of the images the keypoints come from.
        fps: frame rate of the sequence. The LSTM was trained on 30 fps motion played 0.7-1.4x
            as fast, i.e. about 21-43 fps; outside that range a warning is logged and the
            temporal smoothing is less reliable (lift at 30 fps, or use ``use_lstm=False``).
        models_dir: another trained model set (default: the shipped one).
        use_lstm: False returns the lifter alone.
        bones: keep each bone at the track's average length (as posits-live does).

    Returns:
        (T, 33, 3) float32 metres, origin at the hip midpoint, camera-aligned axes (x right,
        y down, z away from the camera); NaN rows where the input had none. The LSTM state
        (and the lifter's window) is reset after every gap, exactly as in posits-live.
    """
    kp = np.asarray(keypoints_2d, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"keypoints_2d must be (T, 33, 3), got {kp.shape}")
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 20.0 <= fps <= 45.0:
        logging.getLogger(__name__).warning(
            "lift_sequence: %.1f fps is outside the 21-43 fps the LSTM was trained for", fps)
    stage = PoseLifter(models_dir, use_lstm=use_lstm, bones=bones)
    out = np.full(kp.shape, np.nan, dtype=np.float32)
    for t, frame in enumerate(kp):
        present = np.isfinite(frame[:, :2]).any()
        pose = stage(Pose2D(keypoints=frame) if present else None)
        if pose is not None:
            out[t] = pose.xyz
    return out

"""What a run writes: the rendered video (:class:`Recorder`) and the poses (:class:`PoseExporter`).

Both check their path when constructed, so a bad ``--out`` fails before the camera starts, and
both are context managers that finalize their file on ``close()`` even when the loop raised.
Every failure the user can fix (wrong extension, missing or read-only folder, full disk) is an
:class:`OutputError` whose message names the file.

Pose files hold, per processed frame (T frames):

=================  ============  ==========================================================
name               shape         meaning
=================  ============  ==========================================================
frame              (T,)          int64, Frame.index
time_s             (T,)          float64, Frame.t_source (seconds)
landmarks_2d       (T, 33, 3)    float32, MediaPipe x_px, y_px, visibility (Pose2D.keypoints)
pose_3d            (T, 33, 3)    float32, lifted pose, metres, root-relative camera axes
world_mediapipe    (T, 33, 3)    float32, MediaPipe's own world landmarks (Pose2D.world)
=================  ============  ==========================================================

A frame without a person is NaN rows in ``.npz`` and JSON ``null`` in ``.jsonl``. ``.jsonl`` is
one JSON object per line with exactly these keys, written and flushed frame by frame, floats
rounded to 5 decimals. ``.npz`` is written once at close, to a temporary file in the same folder
that then replaces the target, so an interrupted run never leaves a truncated archive.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from posits.models.skeleton import NUM_LANDMARKS
from posits.realtime.types import Result

log = logging.getLogger(__name__)

#: Video container extension -> OpenCV fourcc (the PyPI wheels have no H.264 encoder).
VIDEO_FOURCC: dict[str, str] = {".mp4": "mp4v", ".avi": "MJPG"}
POSE_FORMATS: tuple[str, ...] = (".jsonl", ".npz")
#: Per-frame arrays of a pose file (see the module docstring).
POSE_FIELDS: tuple[str, ...] = ("landmarks_2d", "pose_3d", "world_mediapipe")
JSON_DECIMALS = 5


class OutputError(Exception):
    """An output file cannot be written; the message is one line for the user."""


def _check_parent_dir(path: Path) -> None:
    """Raise OutputError unless `path` could be created: its folder exists and is writable."""
    parent = path.parent
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: folder {parent} is not writable")


def _space_hint(path: Path) -> str:
    """A ": no space left on ..." suffix when the folder of `path` is (almost) full, else ""."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    return f": no space left on {path.parent} ({free} bytes free)" if free < 1 << 20 else ""


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Recorder:
    """Writes BGR frames to a video file with OpenCV.

    path: ``.mp4`` (fourcc mp4v) or ``.avi`` (MJPG); fps: frames per second of the file;
    size: (width, height) of the video. Frames of another size are resized to it.
    Raises OutputError at construction for an unsupported extension or an unwritable path.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_FOURCC:
            raise OutputError(f"cannot record to {self.path}: unsupported extension "
                              f"'{ext or '(none)'}', use one of {', '.join(VIDEO_FOURCC)}")
        if not (fps > 0 and math.isfinite(fps)):
            raise OutputError(f"cannot record to {self.path}: fps must be positive, got {fps}")
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            raise OutputError(f"cannot record to {self.path}: bad frame size {size}")
        _check_parent_dir(self.path)
        self.size = (width, height)
        self.fps = float(fps)
        fourcc = cv2.VideoWriter.fourcc(*VIDEO_FOURCC[ext])
        self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
        if not self._writer.isOpened():
            raise OutputError(f"cannot record to {self.path}: OpenCV could not open a "
                              f"{VIDEO_FOURCC[ext]} writer for it")
        self._frames = 0
        self._closed = False
        self._resize_logged = False
        log.info("recording %s (%s, %dx%d, %.2f fps)", self.path, VIDEO_FOURCC[ext],
                 width, height, self.fps)

    @property
    def frames_written(self) -> int:
        """Number of frames written so far."""
        return self._frames

    def write(self, image_bgr: np.ndarray) -> None:
        """Append one frame: (H, W, 3) uint8 BGR; resized to `size` when it differs."""
        if self._closed:
            raise OutputError(f"cannot write to {self.path}: the recorder is closed")
        image_bgr = np.asarray(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"Recorder.write expects (H, W, 3) uint8 BGR, got "
                             f"{image_bgr.shape} {image_bgr.dtype}")
        if (image_bgr.shape[1], image_bgr.shape[0]) != self.size:
            if not self._resize_logged:
                log.warning("recording %s: frames of %dx%d are resized to %dx%d", self.path,
                            image_bgr.shape[1], image_bgr.shape[0], *self.size)
                self._resize_logged = True
            image_bgr = cv2.resize(image_bgr, self.size, interpolation=cv2.INTER_AREA)
        ok = self._writer.write(np.ascontiguousarray(image_bgr))
        if ok is False:  # OpenCV 5 returns a bool; older builds return None
            self._closed = True
            self._writer.release()
            raise OutputError(f"could not write frame {self._frames} to {self.path}"
                              f"{_space_hint(self.path)}")
        self._frames += 1

    def close(self) -> None:
        """Finalize the file. Safe to call twice. Raises OutputError if nothing reached disk."""
        if self._closed:
            return
        self._closed = True
        self._writer.release()
        size = self.path.stat().st_size if self.path.exists() else 0
        log.info("recorded %d frames to %s (%d bytes)", self._frames, self.path, size)
        if self._frames and size == 0:
            raise OutputError(f"recording {self.path} is empty after {self._frames} frames"
                              f"{_space_hint(self.path)}")

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _frame_arrays(result: Result) -> dict[str, np.ndarray | None]:
    """The three (33, 3) per-frame arrays of `result` (None where absent)."""
    pose2d, pose3d = result.pose2d, result.pose3d
    return {
        "landmarks_2d": None if pose2d is None else pose2d.keypoints,
        "pose_3d": None if pose3d is None else pose3d.xyz,
        "world_mediapipe": None if pose2d is None or pose2d.world is None else pose2d.world,
    }


def _json_rows(array: np.ndarray | None):
    """(33, 3) array -> nested lists rounded to JSON_DECIMALS; non-finite values -> null."""
    if array is None:
        return None
    rounded = np.round(np.asarray(array, dtype=np.float64), JSON_DECIMALS)
    if np.isfinite(rounded).all():
        return rounded.tolist()
    return [[v if math.isfinite(v) else None for v in row] for row in rounded.tolist()]


class _JsonlWriter:
    """Writes one JSON frame record per line, flushed as it goes."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write poses to {path}: {_describe(exc)}") from exc

    def add(self, frame: int, time_s: float, arrays: dict[str, np.ndarray | None]) -> None:
        record = {"frame": frame, "time_s": time_s}
        record.update({name: _json_rows(arrays[name]) for name in POSE_FIELDS})
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def abort(self) -> None:
        """Close after a write error; buffered bytes may fail again and are dropped."""
        try:
            self._file.close()
        except OSError:
            pass


class _NpzWriter:
    """Collects frames in memory and writes the .npz atomically at close()."""

    def __init__(self, path: Path):
        self.path = path
        self.frames: list[int] = []
        self.times: list[float] = []
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in POSE_FIELDS}
        self._nan = np.full((NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        try:  # create the temporary file now: an unwritable folder fails at construction
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise OutputError(f"cannot write poses to {path}: {_describe(exc)}") from exc
        os.close(fd)
        self._tmp = Path(tmp)

    def add(self, frame: int, time_s: float, arrays: dict[str, np.ndarray | None]) -> None:
        self.frames.append(frame)
        self.times.append(time_s)
        for name in POSE_FIELDS:
            a = arrays[name]
            self.rows[name].append(self._nan if a is None else np.asarray(a, dtype=np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"frame": np.asarray(self.frames, dtype=np.int64),
               "time_s": np.asarray(self.times, dtype=np.float64)}
        for name in POSE_FIELDS:
            rows = self.rows[name]
            out[name] = (np.stack(rows) if rows
                         else np.empty((0, NUM_LANDMARKS, 3), dtype=np.float32))
        return out

    def close(self) -> None:
        try:
            with open(self._tmp, "wb") as f:
                np.savez_compressed(f, **self.arrays())
                f.flush()
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except OSError:
            self.abort()
            raise

    def abort(self) -> None:
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            pass


class PoseExporter:
    """Exports per-frame poses to ``.jsonl`` (streamed) or ``.npz`` (written at close).

    path: the target file; its extension chooses the format. Raises OutputError at
    construction for another extension or an unwritable folder, and from add()/close() when
    writing fails (e.g. the disk is full). Use as a context manager so the file is finalized
    even if the loop raises.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in POSE_FORMATS:
            raise OutputError(f"cannot export poses to {self.path}: unsupported extension "
                              f"'{ext or '(none)'}', use one of {', '.join(POSE_FORMATS)}")
        _check_parent_dir(self.path)
        self._writer = _JsonlWriter(self.path) if ext == ".jsonl" else _NpzWriter(self.path)
        self._count = 0
        self._closed = False
        log.info("exporting poses to %s", self.path)

    @property
    def frames_added(self) -> int:
        """Number of frame records added so far."""
        return self._count

    def add(self, result: Result) -> None:
        """Record one processed frame (with or without a person)."""
        if self._closed:
            raise OutputError(f"cannot add poses to {self.path}: the exporter is closed")
        try:
            self._writer.add(int(result.frame.index), float(result.frame.t_source),
                             _frame_arrays(result))
        except OSError as exc:
            self._fail()
            raise OutputError(f"could not write poses to {self.path}: "
                              f"{_describe(exc)}") from exc
        self._count += 1

    def close(self) -> None:
        """Finalize the file (npz: write it now). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        except OSError as exc:
            raise OutputError(f"could not write poses to {self.path}: "
                              f"{_describe(exc)}") from exc
        log.info("exported %d frames of poses to %s", self._count, self.path)

    def _fail(self) -> None:
        self._closed = True
        self._writer.abort()

    def __enter__(self) -> PoseExporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_poses(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.jsonl`` or ``.npz`` pose file into the arrays of the module docstring.

    Null frames and null values become NaN. A truncated last line of a ``.jsonl`` (a run killed
    mid-write) is skipped with a warning.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".npz":
        with np.load(path) as data:
            return {name: data[name] for name in ("frame", "time_s", *POSE_FIELDS)}
    if ext != ".jsonl":
        raise OutputError(f"cannot read poses from {path}: unsupported extension '{ext}'")
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                log.warning("%s: skipping a truncated last line", path)
                continue
            raise OutputError(f"{path}:{number} is not a JSON frame record")
    out = {"frame": np.asarray([r["frame"] for r in records], dtype=np.int64),
           "time_s": np.asarray([r["time_s"] for r in records], dtype=np.float64)}
    for name in POSE_FIELDS:
        stacked = np.full((len(records), NUM_LANDMARKS, 3), np.nan, dtype=np.float32)
        for t, record in enumerate(records):
            rows = record[name]
            if rows is not None:
                stacked[t] = np.array(rows, dtype=np.float64)  # None -> nan
        out[name] = stacked
    return out

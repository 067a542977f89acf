"""The 3D stages: ONNX CNN lifter and streaming ONNX LSTM smoother, and ``lift_sequence``.

ONNX contract (written by ``posits-train export``, described in models/manifest.json):

lifter    input  ``keypoints`` (N, W, 33, 3) float32: the last W frames of normalized 2D
                 (models/normalize.normalize_2d), oldest first, the current frame last
          output ``pose``      (N, 33, 3) float32: normalized root-relative 3D
smoother  inputs ``pose_in`` (N, 33, 3) lifter output, ``keypoints`` (N, 33, 3) current
                 normalized 2D, ``dt`` (N, 1) time since the previous frame in 30 fps frames
                 (1 at 30 fps, 2 at 15 fps; model sets made before it have no ``dt``), and
                 state: ``h_in``, ``c_in`` (N, U) LSTM state, ``y_in``, ``v_in`` (N, 33, 3)
                 previous refined pose and its velocity
          outputs ``pose`` (N, 33, 3) refined pose and the next state ``h_out``, ``c_out``,
                 ``y_out``, ``v_out``. State starts at zero, except ``y_in`` = the first pose_in.

W and U are read from the ONNX sessions themselves. ONNX Runtime never leaves this module.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posits.models import manifest
from posits.models.manifest import ModelError
from posits.models.normalize import denormalize_3d, normalize_2d
from posits.models.skeleton import (HIP_MID, KINEMATIC_TREE, LEFT_HIP, LEFT_SHOULDER,
                                    NUM_LANDMARKS, RIGHT_HIP, RIGHT_SHOULDER, SHOULDER_MID)
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

    def bind(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Callable[[], None]:
        """Bind preallocated arrays to the model's inputs and outputs; returns ``run()``.

        The arrays (float32, C-contiguous, the shapes the model takes and gives) are shared
        with ONNX Runtime by memory: ``run()`` reads what the input arrays hold at that moment
        and writes the results into the output arrays, with no conversion or allocation on
        the way (the live loop's per-frame path). ``run`` keeps the arrays alive.
        """
        arrays = {**inputs, **outputs}
        for name, array in arrays.items():
            if array.dtype != np.float32 or not array.flags.c_contiguous:
                raise ValueError(f"{name}: bound arrays must be C-contiguous float32")
        binding = self.session.io_binding()
        for name, array in inputs.items():
            binding.bind_cpu_input(name, array)
        for name, array in outputs.items():
            binding.bind_output(name, "cpu", 0, np.float32, array.shape, array.ctypes.data)
        run_with_iobinding = self.session.run_with_iobinding

        def run() -> None:
            run_with_iobinding(binding)

        run.arrays = arrays         # the bound memory lives as long as run does
        return run


def _require(model: OnnxModel, role: str, inputs: set[str], outputs: set[str]) -> None:
    if not inputs <= set(model.inputs) or not outputs <= set(model.outputs):
        raise ModelError(f"{role} model has inputs {sorted(model.inputs)} and outputs "
                         f"{sorted(model.outputs)}; expected {sorted(inputs)} -> {sorted(outputs)}")


class Lifter:
    """Normalized 2D window -> root-relative 3D (the CNN lifter). Keeps the last W frames.

    ``__call__(normalized_2d)`` takes one frame's normalized 2D (33, 3) and returns the
    normalized 3D pose (33, 3); ``reset()`` forgets the history (after a gap).
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.model = OnnxModel(path, threads)
        _require(self.model, "lifter", {"keypoints"}, {"pose"})
        shape = self.model.inputs["keypoints"]
        if len(shape) != 4 or not isinstance(shape[1], int) or tuple(shape[2:]) != (NUM_LANDMARKS, 3):
            raise ModelError(f"lifter input 'keypoints' has shape {shape}; expected (N, W, 33, 3)")
        self.window = int(shape[1])
        self._frames = np.zeros((1, self.window, NUM_LANDMARKS, 3), np.float32)  # oldest first
        self._pose = np.zeros((1, NUM_LANDMARKS, 3), np.float32)
        self._run = self.model.bind({"keypoints": self._frames}, {"pose": self._pose})
        self.reset()

    def reset(self) -> None:
        self._tracking = False

    def __call__(self, normalized_2d: np.ndarray) -> np.ndarray:
        """(33, 3) normalized 2D of the current frame -> (33, 3) normalized 3D."""
        frames = self._frames[0]
        if self._tracking:          # shift the window by one frame, in place
            frames[:-1] = frames[1:]
            frames[-1] = normalized_2d
        else:                       # a new track: pad the window with its first frame
            frames[:] = normalized_2d
            self._tracking = True
        self._run()
        return self._pose[0].copy()


class Smoother:
    """The streaming smoother: one step per frame, its recurrent state carried here explicitly.

    Every smoother input other than ``pose_in``, ``keypoints`` and ``dt`` is state:
    ``<name>_in`` is fed the previous step's ``<name>_out``. At a track start all state is zero
    except ``y_in`` (the previous refined pose), which starts at the lifter's first pose.

    ``update(pose, normalized_2d, dt)`` returns the refined normalized pose (``dt``: time since
    the previous frame in 30 fps frames; a smoother without that input ignores it);
    ``reset()`` starts a new track (call it when the person is lost).
    """

    INPUTS = ("pose_in", "keypoints", "dt")

    def __init__(self, path: str | Path, threads: int = 1):
        self.model = OnnxModel(path, threads)
        _require(self.model, "smoother", {"pose_in", "keypoints", "h_in", "c_in"},
                 {"pose", "h_out", "c_out"})
        self.takes_dt = "dt" in self.model.inputs
        self.state_names = [n for n in self.model.inputs if n not in self.INPUTS]
        self._shapes = {}
        for name in self.state_names:
            shape = self.model.inputs[name]
            if not name.endswith("_in") or name[:-3] + "_out" not in self.model.outputs:
                raise ModelError(f"smoother state input {name} has no matching output {name[:-3]}_out")
            if not all(isinstance(d, int) for d in shape[1:]):
                raise ModelError(f"smoother state {name} has no fixed size: {shape}")
            self._shapes[name] = (1, *shape[1:])
        self.units = int(self.model.inputs["h_in"][-1])
        # bound buffers: this step's inputs, the state fed in, the refined pose and next state
        self._pose_in = np.zeros((1, NUM_LANDMARKS, 3), np.float32)
        self._keypoints = np.zeros((1, NUM_LANDMARKS, 3), np.float32)
        self._dt = np.ones((1, 1), np.float32)
        self._pose = np.zeros((1, NUM_LANDMARKS, 3), np.float32)
        self._state = {n: np.zeros(s, np.float32) for n, s in self._shapes.items()}
        self._next_state = {n: np.zeros(s, np.float32) for n, s in self._shapes.items()}
        feeds = {"pose_in": self._pose_in, "keypoints": self._keypoints}
        if self.takes_dt:
            feeds["dt"] = self._dt
        self._run = self.model.bind(
            {**feeds, **self._state},
            {"pose": self._pose, **{n[:-3] + "_out": b for n, b in self._next_state.items()}})
        self.reset()

    def reset(self) -> None:
        self._tracking = False

    def update(self, pose: np.ndarray, normalized_2d: np.ndarray, dt: float = 1.0) -> np.ndarray:
        self._pose_in[0] = pose
        self._keypoints[0] = normalized_2d
        self._dt[0, 0] = dt
        if not self._tracking:      # a new track: zero state, y_in = this first pose
            for state in self._state.values():
                state.fill(0.0)
            if "y_in" in self._state:
                self._state["y_in"][...] = self._pose_in
            self._tracking = True
        self._run()
        for name, state in self._state.items():     # <name>_out -> <name>_in
            np.copyto(state, self._next_state[name])
        return self._pose[0].copy()


def _tree_matrices() -> tuple[np.ndarray, np.ndarray]:
    """KINEMATIC_TREE as two float32 matrices over the 33 landmarks, one row/column per bone:

    ``bones_from_points`` (B, 33): bone vectors (child minus parent) = it @ pose, the virtual
        hip and shoulder midpoints being the averages of their two landmarks;
    ``points_from_bones`` (33, B): each landmark = it @ bone vectors, the sum of the bones on
        its path from the hip midpoint (a 0/1 matrix).
    """
    def point(j: int) -> np.ndarray:
        row = np.zeros(NUM_LANDMARKS)
        if j == HIP_MID:
            row[[LEFT_HIP, RIGHT_HIP]] = 0.5
        elif j == SHOULDER_MID:
            row[[LEFT_SHOULDER, RIGHT_SHOULDER]] = 0.5
        else:
            row[j] = 1.0
        return row

    bones_from_points = np.stack([point(c) - point(p) for c, p, _ in KINEMATIC_TREE])
    path: dict[int, list[int]] = {HIP_MID: []}      # parents come before their children
    for b, (child, parent, _) in enumerate(KINEMATIC_TREE):
        path[child] = path[parent] + [b]
    points_from_bones = np.zeros((NUM_LANDMARKS, len(KINEMATIC_TREE)))
    for j in range(NUM_LANDMARKS):
        points_from_bones[j, path[j]] = 1.0
    return bones_from_points.astype(np.float32), points_from_bones.astype(np.float32)


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
        self._bones_from_points, self._points_from_bones = _tree_matrices()
        self.reset()

    def reset(self) -> None:
        self._lengths: np.ndarray | None = None
        self._n = 0

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """(33, 3) root-relative pose -> (33, 3) float32 with the track's bone lengths, the
        hip midpoint at the origin."""
        vec = self._bones_from_points @ np.asarray(xyz, dtype=np.float32)      # (B, 3)
        length = np.sqrt((vec * vec).sum(axis=1))
        self._n += 1
        w = max(1.0 / self._n, 1.0 / self.memory)
        self._lengths = length if self._lengths is None else (1 - w) * self._lengths + w * length
        stretch = self._lengths / np.maximum(length, 1e-6)
        return self._points_from_bones @ (vec * stretch[:, None])


class PoseLifter:
    """The whole 3D stage for one person: Pose2D -> Pose3D, lifter then (optionally) LSTM.

    Args:
        models_dir: folder with manifest.json, lifter and smoother (default: shipped models/).
        use_lstm: False runs the lifter alone.
        threads: ONNX Runtime intra-op threads per model.
        bones: keep bone lengths constant over a track (BoneLengthFilter), after the LSTM.

        fps: the source's frame rate, for calls that give no frame time.

    Loading checks each file against the manifest (sha256, normalization version).
    ``timings`` holds the last call's milliseconds for "lift" (normalization + CNN) and "lstm"
    (LSTM step + bone-length filter).
    """

    def __init__(self, models_dir: str | Path | None = None, use_lstm: bool = True, threads: int = 1,
                 bones: bool = True, fps: float = 30.0):
        lifter_path, self.lifter_entry = manifest.resolve("lifter", models_dir)
        self.lifter = Lifter(lifter_path, threads)
        self.smoother = None
        if use_lstm:
            smoother_path, self.smoother_entry = manifest.resolve("smoother", models_dir)
            self.smoother = Smoother(smoother_path, threads)
        self.bones = BoneLengthFilter() if bones else None
        self.timings: dict[str, float] = {}
        self.fps = float(fps) if fps and fps > 0 else 30.0
        span = self.fps_range or (self.fps, self.fps)
        self._dt_limits = (30.0 / span[1], 30.0 / span[0])    # the frame intervals trained for
        self._last_t: float | None = None

    @property
    def fps_range(self) -> tuple[float, float] | None:
        """The camera frame rates the LSTM was trained for, from its manifest entry:
        ``smoother_fps``, or for model sets made before the LSTM knew the frame interval, 30
        fps motion played ``smoother_speed`` (or ``speed``) times as fast, i.e.
        (30 / fastest, 30 / slowest) fps. None without the LSTM or the record."""
        if self.smoother is None:
            return None
        cfg = self.smoother_entry.get("data_config", {})
        fps = cfg.get("smoother_fps") if self.smoother.takes_dt else None
        if fps and len(fps) == 2 and min(fps) > 0:
            return float(min(fps)), float(max(fps))
        speed = cfg.get("smoother_speed") or cfg.get("speed")
        if not speed or len(speed) != 2 or min(speed) <= 0:
            return None
        return 30.0 / max(speed), 30.0 / min(speed)

    #: Below this rate the LSTM filter lags even when it knows the frame interval: with fewer
    #: frames per second, telling motion from jitter takes longer. Measured with the shipped
    #: models (held-out clips resampled, 24 views per rate), MPJPE over the lifter alone:
    #: run full25 +18.4 mm at 15 fps, +10.6 at 20, +4.2 at 24, +2.4 at 30, -1.3 at 60
    #: (full23: +17.5, +9.2, +4.1, +1.8, -1.2).
    STEADY_FPS = 24.0

    def lag_fps(self) -> float | None:
        """The rate below which the LSTM lags (``lags_at``): the lowest it was trained for
        (``fps_range``), and never below STEADY_FPS. None without the LSTM or the record."""
        span = self.fps_range
        return None if span is None else max(span[0], self.STEADY_FPS)

    def lags_at(self, fps: float) -> bool:
        """True when ``fps`` is below ``lag_fps()`` (5 % margin: a 23.98 fps video is fine)."""
        low = self.lag_fps()
        return low is not None and fps < 0.95 * low

    def reset(self) -> None:
        self.lifter.reset()
        if self.smoother is not None:
            self.smoother.reset()
        if self.bones is not None:
            self.bones.reset()
        self._last_t = None

    def frame_dt(self, t: float | None) -> float:
        """The smoother's ``dt`` for a frame at time ``t`` (seconds; None: one frame at
        ``fps``): the time since the previous frame in 30 fps frames, kept within the
        intervals the LSTM was trained for (frames dropped from a camera make it larger)."""
        last, self._last_t = self._last_t, t
        if t is None or last is None or not t > last:
            dt = 30.0 / self.fps
        else:
            dt = 30.0 * (t - last)
        lo, hi = self._dt_limits
        return min(max(dt, lo), hi)

    def __call__(self, pose2d: Pose2D | None, t: float | None = None) -> Pose3D | None:
        """The 3D pose for this frame, or None (and a reset) when there is no person.
        ``t``: the frame's time in seconds (e.g. ``Frame.t_source``); None: frames at ``fps``."""
        if pose2d is None:
            self.reset()
            self.timings = {"lift": 0.0, "lstm": 0.0}
            return None
        t0 = time.perf_counter()
        x = normalize_2d(pose2d.keypoints)
        y = self.lifter(x)
        t1 = time.perf_counter()
        if self.smoother is not None:
            y = self.smoother.update(y, x, self.frame_dt(t))
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
        fps: frame rate of the sequence (the LSTM is told the frame interval). It was
            trained for a range of camera rates (``PoseLifter.fps_range``, from the manifest:
            15-60 fps for the shipped one), but below 24 fps it lags (``PoseLifter.lag_fps``):
            a warning is logged (``use_lstm=False`` is more accurate there, not steadier).
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
    stage = PoseLifter(models_dir, use_lstm=use_lstm, bones=bones, fps=fps)
    if stage.lags_at(fps):
        logging.getLogger(__name__).warning(
            "lift_sequence: at %.1f fps the LSTM filter lags (it keeps up from %.0f fps on); "
            "use_lstm=False is more accurate there", fps, stage.lag_fps())
    out = np.full(kp.shape, np.nan, dtype=np.float32)
    for t, frame in enumerate(kp):
        present = np.isfinite(frame[:, :2]).any()
        pose = stage(Pose2D(keypoints=frame) if present else None)
        if pose is not None:
            out[t] = pose.xyz
    return out

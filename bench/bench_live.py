"""posits live benchmark: throughput side by side, memory over a long run, 3D quality on real footage.

    python bench/bench_live.py [--video PATH] [--frames N] [--rounds R] [--soak-minutes M]
                               [--models DIR] [--json out.json]

Everything runs in this one process, on real parts only (the shipped MediaPipe PoseLandmarker, the
ONNX lifter and LSTM, VisPy rendering headless through EGL, OpenCV decoding and encoding):

1. Throughput. The input (default tests/data/walk.mp4, 640x400, letterboxed to 640x480 and looped
   to N frames into a temporary mp4v file, so every variant decodes exactly the same frames) is
   run through, in interleaved rounds (decode, i, ii, iii, iii* per round; i and ii swap places
   every other round, so that neither always runs first), so the noise of a shared machine
   hits all variants alike. The (ii)/(i) ratio is the median over rounds of the ratio within
   a round (two runs next to each other in time); the ratio of the best rounds is shown too:

   (i)    MediaPipe alone: FrameReader(VideoSource) on its capture thread, PoseDetector (VIDEO
          mode, the same model, no posits swap guard) on every frame.
   (ii)   the posits pipeline headless: Pipeline(VideoSource, PoseDetector, PoseLifter(LSTM)).
   (iii)  the pipeline rendering offscreen and recording: the per-frame work of
          ``posits-live --video X --headless --record out.mp4`` (format_hud + overlay.Overlay +
          PoseView.update + Recorder.write(PoseView.render(out=...))), replicated from app.py with
          each part timed.
   (iii*) ``posits.realtime.app.run`` itself with those arguments (the real thing; fps only,
          as app.run reports it): checks that (iii) measures what posits-live does.

   plus a decode-only pass (the reader alone) for scale, and the lifter + one LSTM step in ONNX
   Runtime alone on one thread, on the clip's real landmarks (and the whole PoseLifter call in a
   tight loop and after sleeping one (i) frame: the cost of waking up, without MediaPipe).
2. Memory (``--soak-minutes M``): the render+record loop on the clip looped for M minutes, as
   fast as it goes; resident set size (VmRSS) sampled every second: start (after warm-up), max,
   end, and the least-squares slope in MB/min. ``--soak-no-record``: the same loop without the
   recording (posits-live in a window, writing nothing): an mp4 file's index of every frame
   (OpenCV's FFmpeg muxer: about 72 bytes a frame) stays in memory until the file is closed.
3. 3D quality on the real footage: posits' 3D against MediaPipe's own world landmarks on the
   same frames and the same 2D detections: bone-length stability, joint acceleration, lag.
4. Webcam framing on the real footage: every source frame (one pass, native size) is run whole
   and as a close-up crop (a 4:3 box from above the head down to 0.6 of the way from the
   shoulders to the hips, following the person, resized to 640x480: the hips and legs are
   below the image, as in front of a webcam on a desk). How far the upper body (nose,
   shoulders, elbows, wrists, relative to the shoulder midpoint) moves between the two, for
   posits and for MediaPipe's world landmarks: the same person in the same pose should give the
   same 3D however the camera frames it.

The report is printed as Markdown (stdout); progress goes to stderr; ``--json`` writes every
number. Never import TensorFlow here: this process renders (see realtime/view3d.py).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from posits.models import skeleton
from posits.realtime.types import Frame

log = logging.getLogger("posits.bench")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VIDEO = REPO / "tests" / "data" / "walk.mp4"
DEFAULT_SIZE = (640, 480)           # the default clip is letterboxed to this (webcam) size
DEFAULT_FRAMES = 600
DEFAULT_ROUNDS = 2

#: Targets (value, comparison) checked in the report.
TARGET_THROUGHPUT_RATIO = 0.95      # (ii)/(i) fps
TARGET_LIFT_SHARE_PCT = 1.0         # lift + LSTM ms as % of the frame time of (ii)
TARGET_RENDER_FPS = 30.0            # (iii) at 640x480
TARGET_ONNX_MS = 0.2                # lifter + one LSTM step, ORT alone, 1 thread

#: Quality: frames left out after each loop seam (the clip restarts: an artificial jump that
#: neither method should be judged on, and after which the LSTM re-converges).
SEAM_SKIP = 10
MAX_LAG = 5                         # lags searched, in frames, both ways
LAG_JOINTS = (15, 16, 27, 28)       # wrists and ankles
#: RSS sampling period and the warm-up left out of the memory slope (fraction, clamped).
RSS_PERIOD_S = 1.0
SOAK_WARMUP_FRACTION, SOAK_WARMUP_MIN_S, SOAK_WARMUP_MAX_S = 0.15, 5.0, 60.0


# -------------------------------------------------------------------------------------------
# input

@dataclass
class Clip:
    """The prepared benchmark input: a temporary video every variant reads."""

    path: Path
    source: str             # the video it was made from
    source_size: tuple[int, int]
    source_frames: int      # frames read from the source per pass (<= the source's length)
    size: tuple[int, int]   # (w, h) of the prepared frames
    fps: float
    frames: int
    seams: list[int] = field(default_factory=list)    # frame indices where the loop restarts
    fit: str = "none"       # "none" or "letterbox"

    def describe(self) -> str:
        name = self.source
        with contextlib.suppress(ValueError):
            name = str(Path(self.source).resolve().relative_to(REPO))
        sw, sh = self.source_size
        text = f"{name} ({sw}x{sh}, {self.fps:g} fps)"
        if self.fit == "letterbox":
            text += f" letterboxed (scaled to fit, padded, no distortion) to {self.size[0]}x{self.size[1]}"
        if self.seams:
            text += (f", looped {math.ceil(self.frames / self.source_frames)}x "
                     f"({self.source_frames} frames per pass)")
        return text + f": {self.frames} frames, re-encoded mp4v to a temp file"


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale `image` to fit (w, h) keeping its aspect ratio and pad the rest with black."""
    w, h = size
    ih, iw = image.shape[:2]
    if (iw, ih) == (w, h):
        return image
    scale = min(w / iw, h / ih)
    nw, nh = min(w, max(1, round(iw * scale))), min(h, max(1, round(ih * scale)))
    if (nw, nh) != (iw, ih):
        image = cv2.resize(image, (nw, nh),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (h - nh) // 2, (w - nw) // 2
    return cv2.copyMakeBorder(image, top, h - nh - top, left, w - nw - left,
                              cv2.BORDER_CONSTANT, value=(0, 0, 0))


def prepare_clip(video: Path, frames: int, size: tuple[int, int] | None, workdir: Path) -> Clip:
    """Write `frames` frames of `video` (letterboxed to `size` if given, looped from the start
    when the video is shorter) to an mp4v file in `workdir`. Streams: nothing is held in memory."""
    def open_video() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise SystemExit(f"bench: cannot open video {video}")
        return cap

    cap = open_video()
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if 0 < fps <= 1000 else 30.0
    out_path = workdir / "bench_clip.mp4"
    writer = None
    written, per_pass, seams = 0, None, []
    source_size = target = None
    try:
        while written < frames:
            ok, image = cap.read()
            if not ok or image is None:                # end of a pass: loop from the start
                if per_pass is None:
                    per_pass = written
                if written == 0 or per_pass == 0:
                    raise SystemExit(f"bench: no frame could be decoded from {video}")
                cap.release()
                cap = open_video()
                seams.append(written)
                continue
            if writer is None:
                source_size = (image.shape[1], image.shape[0])
                target = size or source_size
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter.fourcc(*"mp4v"), fps, target)
                if not writer.isOpened():
                    raise SystemExit(f"bench: cannot write {out_path}")
            writer.write(letterbox(image, target))
            written += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return Clip(path=out_path, source=str(video), source_size=source_size,
                source_frames=per_pass or written, size=target, fps=fps, frames=written,
                seams=seams, fit="letterbox" if target != source_size else "none")


class LoopingSource:
    """A VideoSource that starts over at its end until ``seconds`` of wall time have passed.

    Frames keep counting across loops (index and ``t_source`` strictly increase, as MediaPipe's
    VIDEO mode needs). Used by the memory soak; ``is_live`` False (every frame, back-pressure).
    """

    is_live = False

    def __init__(self, path: Path, seconds: float):
        from posits.realtime.capture import VideoSource
        self._open = lambda: VideoSource(path)
        self._src = self._open()
        self.name = f"{path} (looped)"
        self.fps, self.size, self.frame_count = self._src.fps, self._src.size, None
        self.seconds = seconds
        self.deadline: float | None = None      # set by the first read
        self.loops = 0
        self._index = 0

    def read(self) -> Frame | None:
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        if now >= self.deadline or self._src is None:
            return None
        frame = self._src.read()
        if frame is None:
            self._src.release()
            self._src = self._open()
            self.loops += 1
            frame = self._src.read()
        out = Frame(index=self._index, t_capture=time.monotonic(),
                    t_source=self._index / self.fps, image=frame.image)
        self._index += 1
        return out

    def release(self) -> None:
        if self._src is not None:
            self._src.release()
            self._src = None


# -------------------------------------------------------------------------------------------
# machine and memory

def rss_mb() -> float:
    """Resident set size of this process in MB (VmRSS from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "cores_usable": usable,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"), "mediapipe": _version("mediapipe"),
        "opencv": cv2.__version__, "numpy": np.__version__, "vispy": _version("vispy"),
        "load_average_start": os.getloadavg()[0],
    }


class RssSampler:
    """VmRSS samples [(t_s, MB)] at most every ``period`` seconds, taken by ``tick()`` from the
    loop being measured (so every sample is taken while it runs, none during teardown)."""

    def __init__(self, period: float = RSS_PERIOD_S):
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._t0: float | None = None       # the first tick (the first frame) is t = 0
        self._next = 0.0

    def tick(self, *_: object) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if now >= self._next:
            self.samples.append((now - self._t0, rss_mb()))
            self._next = now + self.period


def memory_summary(samples: list[tuple[float, float]], warmup_s: float) -> dict:
    """RSS at start (first sample after warm-up), max, end, the slope (MB/min, least squares
    over the samples after warm-up), and two measures that tell a leak (RSS rising all along)
    from a heap that grows in a few steps and then stays: how much higher the second half's
    peak is than the first half's, and when the peak was first reached."""
    after = [(t, m) for t, m in samples if t >= warmup_s] or samples[-2:]
    t = np.array([s[0] for s in after])
    m = np.array([s[1] for s in after])
    slope = float(np.polyfit(t / 60.0, m, 1)[0]) if len(after) >= 2 and np.ptp(t) > 0 else 0.0
    mid = 0.5 * (t[0] + t[-1])
    first, second = m[t <= mid], m[t > mid]
    halves = float(second.max() - first.max()) if len(first) and len(second) else 0.0
    return {"warmup_s": warmup_s, "rss_start_mb": float(m[0]), "rss_max_mb": float(m.max()),
            "rss_end_mb": float(m[-1]), "slope_mb_per_min": slope, "samples": len(samples),
            "rss_before_warmup_mb": float(samples[0][1]), "second_half_growth_mb": halves,
            "peak_reached_s": float(t[int(np.argmax(m))]), "last_sample_s": float(t[-1])}


# -------------------------------------------------------------------------------------------
# throughput variants

class _Clock:
    """Wall time and this process's CPU time (all its threads, MediaPipe's graph threads
    included) since construction. CPU ms per frame is the work done, which the other jobs on a
    shared machine disturb much less than the wall time."""

    def __init__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.t0, time.process_time() - self.c0


def _finish(name: str, frames: int, clock: tuple[float, float], stage_ms: dict[str, float],
            compute: tuple[str, ...]) -> dict:
    """One variant's run: fps, frame ms, CPU ms per frame, mean ms per stage (``stage_ms``,
    e.g. ``StageStats.mean``), and "wait": the inference thread's time per frame not spent in
    `compute` stages (waiting for a frame or for the consumer)."""
    elapsed, cpu = clock
    frame_ms = 1e3 * elapsed / max(frames, 1)
    stage_ms = dict(stage_ms)
    out = {"variant": name, "frames": frames, "seconds": elapsed,
           "fps": frames / elapsed if elapsed > 0 else 0.0, "frame_ms": frame_ms,
           "cpu_ms_per_frame": 1e3 * cpu / max(frames, 1), "stages_ms": stage_ms}
    if compute:
        out["stages_ms"]["wait"] = max(0.0, frame_ms - sum(stage_ms.get(k, 0.0) for k in compute))
    log.info("  %-8s %6.1f fps  cpu %5.2f ms/frame  %s", name, out["fps"], out["cpu_ms_per_frame"],
             "  ".join(f"{k} {v:.2f}" for k, v in out["stages_ms"].items()))
    return out


def run_decode(clip: Clip) -> dict:
    """The capture thread alone: FrameReader(VideoSource), frames taken as fast as they come."""
    from posits.realtime.capture import FrameReader, VideoSource
    frames = 0
    clock = _Clock()
    with FrameReader(VideoSource(clip.path)) as reader:
        for _ in reader:
            frames += 1
    return _finish("decode", frames, clock.stop(), {}, ())


def run_mediapipe(clip: Clip, pose_model: str | None) -> dict:
    """(i) MediaPipe alone: the same reader thread, PoseDetector (VIDEO mode) on every frame."""
    from posits.realtime.capture import FrameReader, VideoSource
    from posits.realtime.detect import PoseDetector
    from posits.realtime.timing import StageStats, profile
    stats, frames = StageStats(), 0
    with PoseDetector(pose_model, fix_swaps=False) as detector:
        t: dict[str, float] = {}
        clock = _Clock()
        with FrameReader(VideoSource(clip.path)) as reader:
            for frame in reader:
                with profile("detect", t):
                    detector(frame.image, frame.t_source)
                stats.add(t)
                frames += 1
        elapsed = clock.stop()
    return _finish("(i)", frames, elapsed, stats.mean, ("detect",))


class PoseArrays:
    """Per-frame 2D landmarks, MediaPipe world landmarks and posits 3D, NaN rows where absent."""

    _NAN = np.full((33, 3), np.nan, np.float32)

    def __init__(self):
        self.rows: dict[str, list] = {"landmarks_2d": [], "world": [], "pose_3d": []}

    def add(self, pose2d, pose3d) -> None:
        self.rows["landmarks_2d"].append(self._NAN if pose2d is None else pose2d.keypoints)
        self.rows["world"].append(self._NAN if pose2d is None or pose2d.world is None else pose2d.world)
        self.rows["pose_3d"].append(self._NAN if pose3d is None else pose3d.xyz)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v).astype(np.float32) for k, v in self.rows.items()}


def run_pipeline(clip: Clip, models: str | None, pose_model: str | None, threads: int,
                 keep: bool = False) -> tuple[dict, dict | None]:
    """(ii) Pipeline(VideoSource, PoseDetector, PoseLifter with LSTM), nothing else.

    With ``keep`` also returns the per-frame arrays (2D landmarks, MediaPipe world, posits 3D).
    """
    from posits.realtime.capture import VideoSource
    from posits.realtime.detect import PoseDetector
    from posits.realtime.lift import PoseLifter
    from posits.realtime.pipeline import Pipeline
    from posits.realtime.timing import StageStats
    stages, age, frames = StageStats(), StageStats(), 0
    kept = PoseArrays()
    with PoseDetector(pose_model) as detector:
        lifter = PoseLifter(models, use_lstm=True, threads=threads)
        clock = _Clock()
        with Pipeline(VideoSource(clip.path), detector, lifter) as pipeline:
            for result in pipeline:
                frames += 1
                stages.add({k: result.timings.get(k, 0.0) for k in ("detect", "lift", "lstm")})
                age.add({"capture": result.timings.get("capture", 0.0)})
                if keep:
                    kept.add(result.pose2d, result.pose3d)
        elapsed = clock.stop()
    out = _finish("(ii)", frames, elapsed, stages.mean, ("detect", "lift", "lstm"))
    out["frame_age_ms"] = age.mean.get("capture", 0.0)  # a frame's age when inference takes it
    return out, kept.arrays() if keep else None


def render_loop(pipeline, view, recorder, on_result=None) -> tuple[int, dict[str, float]]:
    """The consumer loop of posits-live headless with --record (app._run), each part timed.

    Same calls in the same order as app.py: format_hud(stats) + Overlay -> view.update ->
    recorder.write(view.render(out=composite)); "render" is their total, exactly app.py's "render" block.
    Returns the frames and the mean ms per part (running means: nothing grows per frame, so
    the memory soak measures posits and not this loop's bookkeeping).
    """
    from posits.realtime.overlay import Overlay, format_hud
    from posits.realtime.timing import StageStats, profile
    parts = StageStats()
    overlay, composite = Overlay(), None
    frames = 0
    render_ms = 0.0
    for result in pipeline:
        frames += 1
        parts.add({k: result.timings.get(k, 0.0) for k in ("detect", "lift", "lstm")})
        stats = pipeline.stats
        timings = {**result.timings, "render": render_ms}
        t: dict[str, float] = {}
        with profile("render", t):
            with profile("annotate", t):
                hud = format_hud(stats.fps, 1e3 * (time.monotonic() - result.frame.t_capture),
                                 timings, stats.dropped)
                image = overlay(result.frame.image, result.pose2d, hud)
            with profile("update", t):
                view.update(image, result.pose3d)
            with profile("draw", t):
                composite = view.render(out=composite)
            if recorder is not None:
                with profile("write", t):
                    recorder.write(composite)
        render_ms = t["render"]
        parts.add(t)
        if on_result is not None:
            on_result(frames)
    return frames, parts.mean


def _gl_renderer(view) -> str:
    try:
        from vispy.gloo import gl
        view.canvas.set_current()
        return str(gl.glGetParameter(gl.GL_RENDERER))
    except Exception as exc:        # informative only
        return f"unknown ({type(exc).__name__})"


def run_render(source, models: str | None, pose_model: str | None, threads: int,
               record: Path | None, name: str = "(iii)", on_result=None) -> dict:
    """(iii) posits-live's headless --record path, built as app._run builds it (same objects,
    same order), with the consumer loop of :func:`render_loop`; ``record`` None: the same
    without a recording (posits-live showing a window and writing nothing)."""
    from posits.realtime.app import composite_size
    from posits.realtime.detect import PoseDetector
    from posits.realtime.lift import PoseLifter
    from posits.realtime.outputs import Recorder
    from posits.realtime.pipeline import Pipeline
    from posits.realtime.view3d import PoseView
    with ExitStack() as stack:
        stack.callback(source.release)
        size = composite_size(source.size)
        recorder = (stack.enter_context(Recorder(record, source.fps, size))
                    if record is not None else None)
        detector = stack.enter_context(PoseDetector(pose_model))
        lifter = PoseLifter(models, use_lstm=True, threads=threads)
        view = stack.enter_context(PoseView(size, show=False))
        renderer = _gl_renderer(view)
        clock = _Clock()
        pipeline = stack.enter_context(Pipeline(source, detector, lifter))
        frames, parts = render_loop(pipeline, view, recorder, on_result)
        elapsed = clock.stop()
        written = recorder.frames_written if recorder is not None else 0
    out = _finish(name, frames, elapsed, parts, ("detect", "lift", "lstm"))
    out.update({"composite_size": list(size), "frames_written": written,
                "recording_bytes": record.stat().st_size if record is not None else 0,
                "gl_renderer": renderer})
    return out


_APP_LINE = re.compile(r"posits-live: (\d+) frames in ([\d.]+) s \(([\d.]+) fps\)")


def run_app(clip: Clip, models: str | None, pose_model: str | None, threads: int,
            record: Path) -> dict:
    """(iii*) posits.realtime.app.run with the arguments of
    ``posits-live --video CLIP --headless --record OUT`` (parsed by posits-live's own parser);
    fps and frames as app.run prints them (timed by app.run from the start of its loop)."""
    from posits.realtime.app import run
    from posits.realtime.cli import build_parser
    argv = ["--video", str(clip.path), "--headless", "--record", str(record),
            "--threads", str(threads)]
    if models:
        argv += ["--models", str(models)]
    if pose_model:
        argv += ["--pose-model", str(pose_model)]
    args = build_parser().parse_args(argv)
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        status = run(args)
    wall = time.perf_counter() - t0
    text = buf.getvalue().strip()
    log.debug("app.run: %s", text)
    match = _APP_LINE.search(text)
    if status != 0 or match is None:
        raise RuntimeError(f"posits-live app.run failed (status {status}): {text}")
    frames, seconds, fps = int(match[1]), float(match[2]), float(match[3])
    out = {"variant": "(iii*)", "frames": frames, "seconds": seconds, "fps": fps,
           "frame_ms": 1e3 / fps if fps > 0 else 0.0, "stages_ms": {},
           "wall_seconds_incl_setup": wall, "argv": ["posits-live", *argv], "printed": text}
    log.info("  %-8s %6.1f fps  (app.run's own figure; %.1f s wall incl. setup)", "(iii*)", fps, wall)
    return out


def bench_onnx(models: str | None, keypoints: np.ndarray, passes: int = 3,
               idle_ms: float = 0.0, idle_frames: int = 300) -> dict:
    """Lifter + one LSTM step per frame on one thread, on the clip's real landmarks.

    "ort_ms": the two ONNX Runtime session.run calls alone (inputs prepared beforehand);
    "poselifter_ms": a whole PoseLifter call (normalize, window, both runs, denormalize,
    bone-length filter), what the pipeline pays per frame with warm caches (in the pipeline,
    after MediaPipe, it costs more: the (ii) lift + lstm columns). Medians, means and p90 over
    all frames of all passes. With ``idle_ms`` > 0 also "poselifter_after_idle_ms": the same
    call on ``idle_frames`` frames, each after this thread has slept ``idle_ms`` (one MediaPipe
    frame) with nothing else running in the process: what waking up alone costs.
    """
    from posits.models.normalize import normalize_2d
    from posits.realtime.lift import PoseLifter
    from posits.realtime.types import Pose2D
    present = np.isfinite(keypoints[:, :, :2]).all(axis=(1, 2))
    kp = keypoints[present]
    if len(kp) == 0:
        raise RuntimeError("no frame with a person to benchmark the lifter on")
    stage = PoseLifter(models, use_lstm=True, threads=1)
    lifter, smoother = stage.lifter, stage.smoother
    w, units = lifter.window, smoother.units
    norm = np.stack([normalize_2d(frame) for frame in kp])        # frame by frame, as live
    idx = np.clip(np.arange(len(norm))[:, None] - np.arange(w - 1, -1, -1)[None, :], 0, None)
    windows = norm[idx][:, None]                                   # (T, 1, W, 33, 3)
    lift_sess, lstm_sess = lifter.model.session, smoother.model.session
    lift_out, lstm_out = lifter.model.outputs, smoother.model.outputs
    shapes = {n: (1, *smoother.model.inputs[n][1:]) for n in smoother.state_names}
    dt = {"dt": np.ones((1, 1), np.float32)} if smoother.takes_dt else {}      # 30 fps
    ort_ms, call_ms = [], []
    for _ in range(passes):
        for t in range(len(norm)):
            x2d = norm[t][None]
            if t == 0:                      # state: zero, except y_in = the first pose
                pose = lift_sess.run(lift_out, {"keypoints": windows[t]})[0]
                state = {n: pose.copy() if n == "y_in" else np.zeros(s, np.float32)
                         for n, s in shapes.items()}
            t0 = time.perf_counter()
            pose = lift_sess.run(lift_out, {"keypoints": windows[t]})[0]
            res = dict(zip(lstm_out, lstm_sess.run(lstm_out, {"pose_in": pose, "keypoints": x2d,
                                                              **dt, **state})))
            ort_ms.append(1e3 * (time.perf_counter() - t0))
            state = {n: res[n[:-3] + "_out"] for n in shapes}
        stage.reset()
        for frame in kp:
            pose2d = Pose2D(keypoints=frame)
            t0 = time.perf_counter()
            stage(pose2d)
            call_ms.append(1e3 * (time.perf_counter() - t0))

    idle_call_ms = []
    if idle_ms > 0:
        stage.reset()
        for frame in kp[:idle_frames]:
            pose2d = Pose2D(keypoints=frame)
            time.sleep(idle_ms / 1e3)
            t0 = time.perf_counter()
            stage(pose2d)
            idle_call_ms.append(1e3 * (time.perf_counter() - t0))

    def summary(values):
        return {"median": float(np.median(values)), "mean": float(np.mean(values)),
                "p90": float(np.percentile(values, 90))}
    out = {"frames": int(len(kp)), "passes": passes, "window": w, "lstm_units": units,
           "ort_ms": summary(ort_ms), "poselifter_ms": summary(call_ms)}
    if idle_call_ms:
        out["idle_ms"] = float(idle_ms)
        out["poselifter_after_idle_ms"] = summary(idle_call_ms)
    log.info("  onnx     ORT alone %.3f ms median, PoseLifter call %.3f ms median%s",
             out["ort_ms"]["median"], out["poselifter_ms"]["median"],
             f", after {idle_ms:.1f} ms idle {out['poselifter_after_idle_ms']['median']:.3f} ms"
             if idle_call_ms else "")
    return out


# -------------------------------------------------------------------------------------------
# quality

def usable_mask(frames: int, seams: list[int], skip: int = SEAM_SKIP) -> np.ndarray:
    """False for the `skip` frames from each loop seam on (the artificial restart)."""
    mask = np.ones(frames, bool)
    for s in seams:
        mask[s:s + skip] = False
    return mask


def _prepare(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T, 33, 3) metres -> root-relative (hip midpoint) with NaN rows where unusable."""
    p = points.astype(np.float64) - skeleton.hip_center(points.astype(np.float64))[:, None, :]
    p[~mask] = np.nan
    return p


def bone_stability(points: np.ndarray) -> dict:
    """Std over time of each limb bone's length (mm), mean over bones; CV = std / mean (%)."""
    lengths = skeleton.bone_lengths(points)                           # (T, B), NaN rows skipped
    lengths = lengths[np.isfinite(lengths).all(axis=1)]
    std, mean = lengths.std(axis=0), lengths.mean(axis=0)
    return {"bone_std_mm": float(1e3 * std.mean()), "bone_cv_pct": float(100 * (std / mean).mean()),
            "bone_mean_mm": float(1e3 * mean.mean()), "frames": int(len(lengths)),
            "per_bone_std_mm": [float(v) for v in 1e3 * std]}


def mean_acceleration(points: np.ndarray, joints=skeleton.BODY_JOINTS) -> float:
    """Mean |x[t+1] - 2 x[t] + x[t-1]| over body joints and frames (mm/frame^2); second
    differences touching a NaN frame (gap, seam) are left out."""
    p = points[:, list(joints)]
    acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1)
    return float(1e3 * np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def estimate_lag(signal: np.ndarray, reference: np.ndarray, max_lag: int = MAX_LAG) -> dict:
    """Lag of `signal` behind `reference`, both (T, J) trajectories with NaN where unusable.

    Cross-correlates their per-frame velocities (first differences, so offsets and scale do not
    matter) at lags -max_lag..max_lag: at lag L, signal[t] is paired with reference[t - L]; the
    Pearson correlation is averaged over joints. Positive lag: the signal trails the reference.
    "lag_frames_refined" fits a parabola through the peak and its neighbours.
    """
    vs, vr = np.diff(signal, axis=0), np.diff(reference, axis=0)
    T = len(vs)
    lags = list(range(-max_lag, max_lag + 1))
    curve = []
    for lag in lags:
        a = vs[max(lag, 0):T + min(lag, 0)]
        b = vr[max(-lag, 0):T - max(lag, 0)]
        corrs = []
        for j in range(a.shape[1]):
            ok = np.isfinite(a[:, j]) & np.isfinite(b[:, j])
            if ok.sum() >= 10 and a[ok, j].std() > 0 and b[ok, j].std() > 0:
                corrs.append(np.corrcoef(a[ok, j], b[ok, j])[0, 1])
        curve.append(float(np.mean(corrs)) if corrs else float("nan"))
    c = np.array(curve)
    if not np.isfinite(c).any():
        return {"lag_frames": float("nan"), "lag_frames_refined": float("nan"),
                "corr_at_lag": float("nan"), "corr_at_zero": float("nan"), "curve": curve}
    k = int(np.nanargmax(c))
    refined = float(lags[k])
    if 0 < k < len(c) - 1 and np.isfinite(c[k - 1:k + 2]).all():
        denom = c[k - 1] - 2 * c[k] + c[k + 1]
        if denom < 0:
            refined += float(0.5 * (c[k - 1] - c[k + 1]) / denom)
    return {"lag_frames": lags[k], "lag_frames_refined": refined, "corr_at_lag": float(c[k]),
            "corr_at_zero": float(c[max_lag]), "curve": curve, "lags": lags}


def quality_report(arrays: dict, clip: Clip) -> dict:
    """posits 3D vs MediaPipe world landmarks on the same frames (both present)."""
    posits, world, kp = arrays["pose_3d"], arrays["world"], arrays["landmarks_2d"]
    both = (np.isfinite(posits).all(axis=(1, 2)) & np.isfinite(world).all(axis=(1, 2)))
    mask = both & usable_mask(len(posits), clip.seams)
    p, m = _prepare(posits, mask), _prepare(world, mask)
    out: dict = {"frames": int(len(posits)), "frames_used": int(mask.sum()),
                 "frames_with_person": int(both.sum()), "seam_skip": SEAM_SKIP,
                 "seams": clip.seams, "fps": clip.fps}
    for name, pts in (("mediapipe", m), ("posits", p)):
        out[name] = {**bone_stability(pts), "accel_mm": mean_acceleration(pts)}
    ms_per_frame = 1e3 / clip.fps
    joints = list(LAG_JOINTS)
    lag_world = estimate_lag(p[:, joints, 1], m[:, joints, 1])
    # the 2D landmarks in pixels (y down too): posits' lag behind its own input
    k2d = kp[:, :, :2].astype(np.float64)
    k2d = k2d - 0.5 * (k2d[:, skeleton.LEFT_HIP] + k2d[:, skeleton.RIGHT_HIP])[:, None]
    k2d[~mask] = np.nan
    lag_2d = estimate_lag(p[:, joints, 1], k2d[:, joints, 1])
    lag_world_vs_2d = estimate_lag(m[:, joints, 1], k2d[:, joints, 1])
    for lag in (lag_world, lag_2d, lag_world_vs_2d):
        lag["lag_ms"] = lag["lag_frames"] * ms_per_frame
        lag["lag_ms_refined"] = lag["lag_frames_refined"] * ms_per_frame
    out["lag_posits_vs_world"] = lag_world
    out["lag_posits_vs_2d"] = lag_2d
    out["lag_world_vs_2d"] = lag_world_vs_2d
    out["ratios"] = {k: out["posits"][k] / out["mediapipe"][k]
                     for k in ("bone_std_mm", "bone_cv_pct", "accel_mm")}
    return out


# -------------------------------------------------------------------------------------------
# webcam framing

UPPER_BODY = (0, 11, 12, 13, 14, 15, 16)    # nose, shoulders, elbows, wrists
CROP_CUT = 0.6                              # the crop ends this far from the shoulders to the hips
CROP_SMOOTH = 15                            # frames the crop box is averaged over (a steady camera)
CROP_SIZE = (640, 480)


def crop_boxes(keypoints: np.ndarray, cut: float = CROP_CUT, smooth: int = CROP_SMOOTH) -> np.ndarray:
    """(T, 33, 3) pixel landmarks -> (T, 4) 4:3 boxes (x0, y0, x1, y1) from above the head down
    to ``cut`` of the way from the shoulders to the hips, centred on the shoulders; box centre
    and height are averaged over ``smooth`` frames. NaN rows where there is no person."""
    kp = keypoints.astype(np.float64)
    top = np.nanmin(kp[:, :11, 1], axis=1)
    shoulders = kp[:, [11, 12]].mean(axis=1)
    bottom = shoulders[:, 1] + cut * (kp[:, [23, 24], 1].mean(axis=1) - shoulders[:, 1])
    height = (bottom - top) * 1.25                  # a quarter of the head-to-cut span above the head
    cy, cx = bottom - height / 2, shoulders[:, 0]
    kernel = np.ones(smooth)

    def average(v):
        ok = np.isfinite(v)
        num = np.convolve(np.where(ok, v, 0.0), kernel, "same")
        den = np.convolve(ok.astype(float), kernel, "same")
        return np.where(ok, num / np.maximum(den, 1), np.nan)
    cx, cy, height = average(cx), average(cy), average(height)
    width = height * CROP_SIZE[0] / CROP_SIZE[1]
    return np.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], axis=1)


def crop_image(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box of ``image`` at CROP_SIZE (parts outside the image black)."""
    x0, y0, x1, y1 = box
    sx, sy = CROP_SIZE[0] / (x1 - x0), CROP_SIZE[1] / (y1 - y0)
    affine = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]])
    return cv2.warpAffine(image, affine, CROP_SIZE, flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def _lift_frames(images, models: str | None, pose_model: str | None, fps: float) -> dict:
    """MediaPipe + PoseLifter (LSTM, bone filter: posits-live's defaults) on each image in order."""
    from posits.realtime.detect import PoseDetector
    from posits.realtime.lift import PoseLifter
    kept = PoseArrays()
    with PoseDetector(pose_model) as detector:
        lifter = PoseLifter(models)
        for i, image in enumerate(images):
            p2 = detector(image, i / fps)
            kept.add(p2, lifter(p2))
    return kept.arrays()


def _upper_body(points: np.ndarray) -> np.ndarray:
    """(T, 33, 3) -> (T, 7, 3): nose, shoulders, elbows, wrists relative to the shoulder midpoint."""
    return points[:, list(UPPER_BODY)] - points[:, [11, 12]].mean(axis=1, keepdims=True)


def framing_report(clip: Clip, models: str | None, pose_model: str | None) -> dict:
    """Section 4: the source frames whole and as webcam close-ups, posits and MediaPipe world."""
    cap = cv2.VideoCapture(clip.source)
    images = []
    while len(images) < clip.source_frames:
        ok, image = cap.read()
        if not ok or image is None:
            break
        images.append(image)
    cap.release()
    full = _lift_frames(images, models, pose_model, clip.fps)
    boxes = crop_boxes(full["landmarks_2d"])
    framed = np.isfinite(boxes).all(axis=1)
    crops = [crop_image(im, b) if ok else np.zeros((CROP_SIZE[1], CROP_SIZE[0], 3), np.uint8)
             for im, b, ok in zip(images, boxes, framed)]
    close = _lift_frames(crops, models, pose_model, clip.fps)
    hips_vis = close["landmarks_2d"][:, [skeleton.LEFT_HIP, skeleton.RIGHT_HIP], 2]
    out: dict = {"frames": len(images), "frames_framed": int(framed.sum()), "cut": CROP_CUT,
                 "crop_size": list(CROP_SIZE),
                 "close_frames_with_person": int(np.isfinite(close["landmarks_2d"]).all(axis=(1, 2))[framed].sum()),
                 "close_hip_visibility_median": float(np.nanmedian(hips_vis[framed])),
                 "close_hip_below_005_pct": float(100 * np.nanmean((hips_vis[framed] < 0.05).any(axis=1)))}
    for name, key in (("posits", "pose_3d"), ("mediapipe", "world")):
        a, b = _upper_body(full[key]), _upper_body(close[key])
        both = framed & np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        d = 1e3 * np.linalg.norm(a[both] - b[both], axis=-1).mean(axis=1)          # mm per frame
        out[name] = {"frames": int(both.sum()),
                     "upper_body_diff_mm_median": float(np.median(d)) if len(d) else float("nan"),
                     "upper_body_diff_mm_mean": float(d.mean()) if len(d) else float("nan")}
    return out


# -------------------------------------------------------------------------------------------
# memory soak

def soak(clip: Clip, minutes: float, models: str | None, pose_model: str | None, threads: int,
         workdir: Path, record: bool = True) -> dict:
    """The render(+record) loop on the clip looped for `minutes`, VmRSS sampled every second."""
    seconds = 60.0 * minutes
    warmup = min(SOAK_WARMUP_MAX_S, max(SOAK_WARMUP_MIN_S, SOAK_WARMUP_FRACTION * seconds))
    source = LoopingSource(clip.path, seconds)
    path = workdir / "soak.mp4" if record else None
    what = "render+record" if record else "render (no recording)"
    log.info("memory soak: %.1f min of %s on the looped clip (warm-up %.0f s)",
             minutes, what, warmup)
    sampler = RssSampler()
    run = run_render(source, models, pose_model, threads, path, name="soak",
                     on_result=sampler.tick)
    out = {"minutes": minutes, "loop": what, "frames": run["frames"], "fps": run["fps"],
           "loops": source.loops, "recording_bytes": run["recording_bytes"],
           **memory_summary(sampler.samples, warmup),
           "rss_trace": [[round(t, 1), round(m, 1)] for t, m in sampler.samples]}
    if path is not None:
        path.unlink(missing_ok=True)
    log.info("  soak     RSS start %.0f MB, max %.0f, end %.0f, slope %+.2f MB/min",
             out["rss_start_mb"], out["rss_max_mb"], out["rss_end_mb"], out["slope_mb_per_min"])
    return out


# -------------------------------------------------------------------------------------------
# aggregation and report

VARIANTS = ("decode", "(i)", "(ii)", "(iii)", "(iii*)")
LABELS = {
    "decode": "decode only (FrameReader + VideoSource)",
    "(i)": "(i) MediaPipe alone (reader + PoseDetector)",
    "(ii)": "(ii) posits pipeline, headless",
    "(iii)": "(iii) posits + render + record (app.py loop, timed)",
    "(iii*)": "(iii*) posits-live app.run --headless --record",
}


def summarise(runs: list[dict]) -> dict:
    """Per variant over rounds: best and median fps; stage ms from the variant's best round."""
    out = {}
    for name in VARIANTS:
        mine = [r for r in runs if r["variant"] == name]
        if not mine:
            continue
        best = max(mine, key=lambda r: r["fps"])
        out[name] = {"fps_best": best["fps"], "fps_median": statistics.median(r["fps"] for r in mine),
                     "fps_rounds": [r["fps"] for r in mine], "frame_ms": best["frame_ms"],
                     "cpu_ms_per_frame": min((r["cpu_ms_per_frame"] for r in mine
                                              if "cpu_ms_per_frame" in r), default=None),
                     "stages_ms": best["stages_ms"], "best_round": mine.index(best) + 1}
    return out


def targets(summary: dict, rounds: list[dict], onnx: dict) -> dict:
    """The headline ratios, computed from their parts (kept alongside)."""
    i, ii = summary["(i)"], summary["(ii)"]
    paired = [r["(ii)"]["fps"] / r["(i)"]["fps"] for r in rounds]
    ratio = statistics.median(paired)
    lift_ms = ii["stages_ms"]["lift"] + ii["stages_ms"]["lstm"]
    call_ms = onnx["poselifter_ms"]["median"]
    render_fps = summary["(iii*)"]["fps_best"] if "(iii*)" in summary else summary["(iii)"]["fps_best"]
    return {
        "throughput_ratio": {"value": ratio, "ii_fps": ii["fps_best"],
                             "i_fps": i["fps_best"], "paired_rounds": paired,
                             "cpu_ratio": i["cpu_ms_per_frame"] / ii["cpu_ms_per_frame"],
                             "paired_median": ratio, "best_rounds": ii["fps_best"] / i["fps_best"],
                             "target": TARGET_THROUGHPUT_RATIO, "ok": ratio >= TARGET_THROUGHPUT_RATIO},
        "lift_share_pct": {"value": 100 * lift_ms / ii["frame_ms"], "lift_lstm_ms": lift_ms,
                           "frame_ms": ii["frame_ms"], "target": TARGET_LIFT_SHARE_PCT,
                           "ok": 100 * lift_ms / ii["frame_ms"] < TARGET_LIFT_SHARE_PCT,
                           "poselifter_call_ms": call_ms,
                           "poselifter_call_pct": 100 * call_ms / ii["frame_ms"],
                           "poselifter_after_idle_ms": onnx.get("poselifter_after_idle_ms", {}).get("median"),
                           "idle_ms": onnx.get("idle_ms")},
        "render_fps": {"value": render_fps, "target": TARGET_RENDER_FPS,
                       "ok": render_fps >= TARGET_RENDER_FPS},
        "onnx_ms": {"value": onnx["ort_ms"]["median"], "target": TARGET_ONNX_MS,
                    "ok": onnx["ort_ms"]["median"] <= TARGET_ONNX_MS},
    }


def _f(v: float, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def format_report(report: dict) -> str:
    m, clip = report["machine"], report["input"]
    lines = ["# posits live benchmark", ""]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['os']}, "
                 f"Python {m['python']}, onnxruntime {m['onnxruntime']}, mediapipe {m['mediapipe']}, "
                 f"OpenCV {m['opencv']}, VisPy {m['vispy']} (GL: {report.get('gl_renderer', '?')}); "
                 f"load average {m['load_average_start']:.2f} at start, "
                 f"{m.get('load_average_end', float('nan')):.2f} at end.")
    lines.append(f"Input: {clip['description']}. Models: {report['models']}.")
    lines.append(f"{report['rounds']} interleaved rounds (decode, i, ii, iii, iii* each round); "
                 f"fps best / median over rounds; stage ms (means per frame) from each variant's "
                 f"best round; CPU ms/frame = this process's CPU time (all threads) per frame, "
                 f"lowest round (less disturbed by other jobs than wall time); wait = the "
                 f"inference thread's frame time not spent in detect/lift/lstm.")
    lines += ["", f"## Throughput ({clip['frames']} frames, {clip['size'][0]}x{clip['size'][1]})", "",
              "| variant | fps best | fps median | frame ms | CPU ms/frame | wait | detect | lift | lstm | render |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in report["throughput"].items():
        st = s["stages_ms"]
        cells = [_f(st.get(k), 2) if k in st else "" for k in ("wait", "detect", "lift", "lstm", "render")]
        lines.append(f"| {LABELS[name]} | {_f(s['fps_best'])} | {_f(s['fps_median'])} | "
                     f"{_f(s['frame_ms'], 2)} | {_f(s.get('cpu_ms_per_frame'), 2)} | "
                     + " | ".join(cells) + " |")
    iii = report["throughput"].get("(iii)", {}).get("stages_ms", {})
    if iii:
        lines.append("")
        lines.append(f"(iii) render = annotate+HUD {_f(iii['annotate'], 2)} + PoseView.update "
                     f"{_f(iii['update'], 2)} + PoseView.render {_f(iii['draw'], 2)} + Recorder.write "
                     f"{_f(iii['write'], 2)} ms, on the calling thread, in parallel with inference.")
    t, o = report["targets"], report["onnx"]
    ok = lambda x: "yes" if x["ok"] else "**no**"  # noqa: E731
    lines += ["", "## Targets", "", "| measure | value | target | met |", "|---|---:|---:|:---:|",
              f"| (ii)/(i) throughput, median of the rounds' ratios "
              f"({', '.join(_f(x, 3) for x in t['throughput_ratio']['paired_rounds'])}; best rounds "
              f"{_f(t['throughput_ratio']['ii_fps'])} / {_f(t['throughput_ratio']['i_fps'])} fps = "
              f"{_f(t['throughput_ratio']['best_rounds'], 3)}; CPU-time ratio "
              f"{_f(t['throughput_ratio']['cpu_ratio'], 3)}) | {_f(t['throughput_ratio']['value'], 3)} "
              f"| >= {TARGET_THROUGHPUT_RATIO} | {ok(t['throughput_ratio'])} |",
              f"| lift + LSTM share of the (ii) frame time, in the pipeline "
              f"({_f(t['lift_share_pct']['lift_lstm_ms'], 3)} / {_f(t['lift_share_pct']['frame_ms'], 2)} ms; "
              f"the PoseLifter call alone: {_f(t['lift_share_pct']['poselifter_call_ms'], 3)} ms = "
              f"{_f(t['lift_share_pct']['poselifter_call_pct'], 2)} %; the same call after this "
              f"thread slept {_f(t['lift_share_pct']['idle_ms'], 1)} ms, nothing else running: "
              f"{_f(t['lift_share_pct']['poselifter_after_idle_ms'], 3)} ms) | {_f(t['lift_share_pct']['value'], 2)} % "
              f"| < {TARGET_LIFT_SHARE_PCT:g} % | {ok(t['lift_share_pct'])} |",
              f"| (iii) fps at {clip['size'][0]}x{clip['size'][1]}, posits-live render + record | "
              f"{_f(t['render_fps']['value'])} | >= {TARGET_RENDER_FPS:g} | {ok(t['render_fps'])} |",
              f"| lifter + 1 LSTM step, ONNX Runtime alone, 1 thread (median; mean "
              f"{_f(o['ort_ms']['mean'], 3)}, p90 {_f(o['ort_ms']['p90'], 3)}; whole PoseLifter call "
              f"{_f(o['poselifter_ms']['median'], 3)}) | {_f(o['ort_ms']['median'], 3)} ms | "
              f"<= {TARGET_ONNX_MS} ms | {ok(t['onnx_ms'])} |"]
    q = report["quality"]
    mp, po, r = q["mediapipe"], q["posits"], q["ratios"]
    lw, l2, lm = q["lag_posits_vs_world"], q["lag_posits_vs_2d"], q["lag_world_vs_2d"]

    def lag_cell(lag):
        return (f"{lag['lag_frames']:+d} frames ({lag['lag_ms']:+.0f} ms; refined "
                f"{lag['lag_frames_refined']:+.2f} = {lag['lag_ms_refined']:+.0f} ms, r {lag['corr_at_lag']:.2f})")
    lines += ["", f"## 3D quality on the real clip ({q['frames_used']} of {q['frames']} frames: same "
              f"frames, same 2D detections; {q['seam_skip']} frames after each loop seam left out)", "",
              "| measure | MediaPipe world landmarks | posits 3D | posits / MediaPipe |",
              "|---|---:|---:|---:|",
              f"| bone-length std over time, mean of {len(skeleton.LIMB_BONES)} limb bones | "
              f"{_f(mp['bone_std_mm'])} mm | {_f(po['bone_std_mm'])} mm | {_f(r['bone_std_mm'], 2)} |",
              f"| bone-length coefficient of variation | {_f(mp['bone_cv_pct'])} % | "
              f"{_f(po['bone_cv_pct'])} % | {_f(r['bone_cv_pct'], 2)} |",
              f"| mean acceleration, {len(skeleton.BODY_JOINTS)} body joints, root-relative | "
              f"{_f(mp['accel_mm'])} mm/frame² | {_f(po['accel_mm'])} mm/frame² | {_f(r['accel_mm'], 2)} |",
              f"| lag behind the 2D landmarks (wrist/ankle y velocity cross-correlation) | "
              f"{lag_cell(lm)} | {lag_cell(l2)} | |",
              f"| lag of posits behind MediaPipe world | | {lag_cell(lw)} | |"]
    fr = report.get("framing")
    if fr:
        po, mp = fr["posits"], fr["mediapipe"]
        lines += ["", f"## Webcam framing on the real clip ({fr['frames_framed']} source frames, each "
                  f"whole and as a {fr['crop_size'][0]}x{fr['crop_size'][1]} close-up cut {fr['cut']:g} of "
                  f"the way from the shoulders to the hips)", "",
                  "| upper body (nose, shoulders, elbows, wrists; shoulder-centred), whole frame vs "
                  "close-up | MediaPipe world landmarks | posits 3D |", "|---|---:|---:|",
                  f"| mean difference per joint, median over frames | {_f(mp['upper_body_diff_mm_median'])} mm "
                  f"| {_f(po['upper_body_diff_mm_median'])} mm |",
                  f"| the same, mean over frames | {_f(mp['upper_body_diff_mm_mean'])} mm | "
                  f"{_f(po['upper_body_diff_mm_mean'])} mm |",
                  f"| frames compared | {mp['frames']} | {po['frames']} |", "",
                  f"In the close-ups MediaPipe found the person in {fr['close_frames_with_person']} frames; "
                  f"hip visibility median {fr['close_hip_visibility_median']:.2f}, a hip under 0.05 in "
                  f"{fr['close_hip_below_005_pct']:.0f} % of them."]
    if report.get("memory"):
        mem = report["memory"]
        lines += ["", f"## Memory ({mem['loop']}, clip looped, as fast as it goes)", "",
                  "| minutes | frames | fps | RSS start (after warm-up) | max | end | slope "
                  "| second half's peak over the first's | peak first reached |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {mem['minutes']:g} | {mem['frames']} | {_f(mem['fps'])} | "
                  f"{_f(mem['rss_start_mb'])} MB | {_f(mem['rss_max_mb'])} MB | "
                  f"{_f(mem['rss_end_mb'])} MB | {mem['slope_mb_per_min']:+.2f} MB/min | "
                  f"{mem['second_half_growth_mb']:+.1f} MB | at {mem['peak_reached_s']:.0f} s "
                  f"of {mem['last_sample_s']:.0f} |",
                  "", f"Warm-up {mem['warmup_s']:.0f} s left out of start and slope (RSS before it: "
                  f"{_f(mem['rss_before_warmup_mb'])} MB); {mem['samples']} samples, one per second."]
    else:
        lines += ["", "Memory: skipped (--soak-minutes 0)."]
    lines.append("")
    lines.append(f"Total benchmark time {report['seconds']:.0f} s.")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m[1]) < 16 or int(m[2]) < 16:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}")
    return int(m[1]), int(m[2])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, help="input video (default: tests/data/walk.mp4 "
                   "letterboxed to 640x480)")
    p.add_argument("--size", type=_size, help="letterbox the input to WxH (default: 640x480 for "
                   "the default clip, the video's own size for --video)")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"frames per run; the video is looped to reach it (default {DEFAULT_FRAMES})")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"interleaved rounds of all variants (default {DEFAULT_ROUNDS})")
    p.add_argument("--soak-minutes", type=float, default=0.0,
                   help="memory soak length in minutes (default 0: skip)")
    p.add_argument("--soak-no-record", action="store_true",
                   help="soak the render loop without recording (default: render + record)")
    p.add_argument("--models", help="folder with manifest.json, lifter and smoother "
                   "(default: the shipped models)")
    p.add_argument("--pose-model", help="MediaPipe .task bundle (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads in the pipeline "
                   "(default 1, as posits-live)")
    p.add_argument("--no-app", action="store_true", help="skip (iii*), posits-live's app.run")
    p.add_argument("--json", type=Path, help="write every number to this JSON file")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def run_bench(args: argparse.Namespace) -> dict:
    """The whole benchmark; returns the report dict (printed and saved by main)."""
    from posits.realtime.capture import VideoSource
    t_begin = time.monotonic()
    for value, name in ((args.frames, "--frames"), (args.rounds, "--rounds"), (args.threads, "--threads")):
        if value < 1:
            raise SystemExit(f"bench: {name} must be >= 1, got {value}")
    if args.soak_minutes < 0:
        raise SystemExit("bench: --soak-minutes must be >= 0")
    video = args.video or DEFAULT_VIDEO
    size = args.size or (DEFAULT_SIZE if args.video is None else None)
    report: dict = {"machine": machine_info(), "rounds": args.rounds,
                    "models": str(args.models) if args.models else "shipped (models/manifest.json)"}
    with tempfile.TemporaryDirectory(prefix="posits-bench-") as tmp:
        workdir = Path(tmp)
        clip = prepare_clip(video, args.frames, size, workdir)
        report["input"] = {**asdict(clip), "path": str(clip.path), "description": clip.describe()}
        log.info("input: %s", clip.describe())
        runs: list[dict] = []
        rounds: list[dict] = []
        arrays = None
        record = workdir / "render.mp4"
        for k in range(args.rounds):
            log.info("round %d/%d", k + 1, args.rounds)
            this = {"decode": run_decode(clip)}
            for name in ("(i)", "(ii)") if k % 2 == 0 else ("(ii)", "(i)"):   # i ii, ii i, ...
                if name == "(i)":
                    this["(i)"] = run_mediapipe(clip, args.pose_model)
                else:
                    this["(ii)"], kept = run_pipeline(clip, args.models, args.pose_model,
                                                      args.threads, keep=arrays is None)
                    arrays = arrays if kept is None else kept
            this["(iii)"] = run_render(VideoSource(clip.path), args.models, args.pose_model,
                                       args.threads, record)
            report["gl_renderer"] = this["(iii)"]["gl_renderer"]
            if not args.no_app:
                this["(iii*)"] = run_app(clip, args.models, args.pose_model, args.threads,
                                         workdir / "app.mp4")
            rounds.append(this)
            runs.extend(this.values())
        report["runs"] = runs
        report["throughput"] = summarise(runs)
        log.info("lifter + LSTM in ONNX Runtime alone, on the clip's landmarks")
        report["onnx"] = bench_onnx(args.models, arrays["landmarks_2d"],
                                    idle_ms=report["throughput"]["(i)"]["frame_ms"])
        report["targets"] = targets(report["throughput"], rounds, report["onnx"])
        log.info("3D quality: posits vs MediaPipe world landmarks")
        report["quality"] = quality_report(arrays, clip)
        log.info("webcam framing: whole frames vs close-up crops")
        report["framing"] = framing_report(clip, args.models, args.pose_model)
        report["memory"] = (soak(clip, args.soak_minutes, args.models, args.pose_model,
                                 args.threads, workdir, record=not args.soak_no_record)
                            if args.soak_minutes > 0 else None)
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    report["seconds"] = time.monotonic() - t_begin
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    report = run_bench(args)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

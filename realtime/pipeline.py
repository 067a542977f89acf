"""The live loop's threads: capture -> inference -> the caller (the GUI or headless loop).

    capture thread   (FrameReader)  source.read() -> Frame
        policy "latest" (camera): one slot, the newest frame wins (drops counted)
        policy "all" (video): bounded queue, back-pressure, every frame
    inference thread (Pipeline)     detector(image, t) -> Pose2D | None
                                    lifter(pose2d, t)  -> Pose3D | None   (CNN + LSTM)
        -> Result(frame, pose2d, pose3d, timings ms: capture, detect, lift, lstm)
        into a small bounded results channel; the worker takes its next frame only when
        the channel has room, so with a camera that frame is the newest one and a slow
        consumer never builds latency, while with a video a slow consumer slows the worker
        (and the reader) down and no frame is skipped.
    calling thread   ``for result in pipeline:`` results in order; rendering and recording
        happen there (this module never touches GL).

Errors raised in either thread (a camera failing, a MediaPipe error) are re-raised in the
calling thread. ``stop()`` (also on the end of input, on leaving the ``with`` block, and when
the loop is left by break / KeyboardInterrupt) closes the channels, joins both threads with a
timeout and releases the capture. The detector and lifter belong to the caller (close them
after the pipeline has stopped).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from .capture import END, Channel, Failure, FrameReader, Policy, Source
from .timing import FPSMonitor, StageStats, profile
from .types import Frame, Pose2D, Pose3D, Result

log = logging.getLogger(__name__)


class Detector(Protocol):
    """The 2D stage (``detect.PoseDetector``): BGR image (H, W, 3) uint8, source time in s."""

    def __call__(self, image_bgr: np.ndarray, t_seconds: float) -> Pose2D | None: ...


class Lifter(Protocol):
    """The 3D stage (``lift.PoseLifter``): ``timings`` holds the last call's ms per step."""

    timings: dict[str, float]

    def __call__(self, pose2d: Pose2D | None, t: float | None = None) -> Pose3D | None: ...


@dataclasses.dataclass(frozen=True)
class PipelineStats:
    """A snapshot of the run so far.

    processed: results delivered to the caller.
    dropped: frames the capture replaced before inference took them (camera policy).
    fps: results per second delivered, over the last 30.
    latency_ms: mean end-to-end latency, from capture to the caller receiving the result.
    stages_ms: mean milliseconds per stage ("capture", "detect", "lift", "lstm").
    """

    processed: int
    dropped: int
    fps: float
    latency_ms: float
    stages_ms: dict[str, float]


class Pipeline:
    """Runs capture and inference on two threads and yields ``Result``s in order.

    Args:
        source: a capture source (VideoSource, CameraSource, LivePacing(...)); the pipeline
            owns it and releases it on stop.
        detector: the 2D stage, called on the inference thread only.
        lifter: the 3D stage (lifter + LSTM), called on the inference thread only; None
            leaves ``Result.pose3d`` None.
        policy: "latest" or "all" (default: "latest" for live sources, "all" for files).
        results_size: capacity of the results channel (default 1 for "latest", 4 for "all").
        join_timeout: seconds ``stop()`` waits for each thread.

    Use as a context manager and iterate once from the thread that consumes the results:

        with Pipeline(VideoSource("walk.mp4"), detector, lifter) as pipeline:
            for result in pipeline:
                show(result)
    """

    def __init__(self, source: Source, detector: Detector, lifter: Lifter | None = None,
                 policy: Policy | None = None, results_size: int | None = None,
                 join_timeout: float = 5.0):
        self.reader = FrameReader(source, policy)
        self.detector = detector
        self.lifter = lifter
        self.join_timeout = join_timeout
        live = self.reader.policy == "latest"
        self._results: Channel[Result] = Channel(results_size or (1 if live else 4))
        self._worker = threading.Thread(target=self._infer_loop, name="posits-inference",
                                        daemon=True)
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._processed = 0
        self._latency_sum = 0.0
        self._fps = FPSMonitor()
        self._stages = StageStats()

    # -- inference thread ----------------------------------------------------------------------

    def process(self, frame: Frame) -> Result:
        """Run the 2D and 3D stages on one frame (the inference thread calls this)."""
        timings = {"capture": 1e3 * max(0.0, time.monotonic() - frame.t_capture)}
        with profile("detect", timings):
            pose2d = self.detector(frame.image, frame.t_source)
        pose3d = None
        if self.lifter is not None:
            pose3d = self.lifter(pose2d, frame.t_source)
            timings.update(self.lifter.timings)
        return Result(frame=frame, pose2d=pose2d, pose3d=pose3d, timings=timings)

    def _infer_loop(self) -> None:
        try:
            while self._results.wait_for_space():   # take a frame only when its result fits
                frame = self.reader.get()
                if frame is None:
                    break
                if not self._results.put(self.process(frame)):
                    return                          # closed by stop()
        except BaseException as exc:                # forwarded to the consumer
            log.debug("inference thread failed: %r", exc)
            self._results.put(Failure(exc))
            return
        self._results.put(END)

    # -- calling thread ------------------------------------------------------------------------

    def start(self) -> "Pipeline":
        """Start the capture and inference threads (done by ``__enter__``/iteration)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("Pipeline was stopped; make a new one")
            if not self._started:
                self._started = True
                self.reader.start()
                self._worker.start()
        return self

    def __iter__(self) -> Iterator[Result]:
        """Results in frame order until the input ends or ``stop()``; stops on the way out."""
        self.start()
        try:
            while True:
                item = self._results.get()
                if isinstance(item, Failure):
                    raise item.error
                if item is END or item is None:
                    return
                self._account(item)
                yield item
        finally:
            self.stop()

    def _account(self, result: Result) -> None:
        now = time.monotonic()
        with self._lock:
            self._processed += 1
            self._latency_sum += now - result.frame.t_capture
            self._fps.tick(now)
            self._stages.add(result.timings)

    @property
    def stats(self) -> PipelineStats:
        with self._lock:
            n = self._processed
            return PipelineStats(processed=n, dropped=self.reader.dropped, fps=self._fps.fps,
                                 latency_ms=1e3 * self._latency_sum / n if n else 0.0,
                                 stages_ms=self._stages.mean)

    @property
    def running(self) -> bool:
        return self._worker.is_alive() or self.reader.running

    def stop(self) -> None:
        """Stop both threads (joined with a timeout) and release the capture. Idempotent."""
        with self._lock:
            first, self._stopped = not self._stopped, True
        self._results.close()           # wakes the worker blocked on put and the consumer
        self.reader.stop()              # wakes the worker blocked on a frame; releases
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(self.join_timeout)
            if self._worker.is_alive():
                log.warning("inference thread did not stop within %.1f s", self.join_timeout)
        if first and self._started:
            stats = self.stats
            log.info("pipeline: %d results, %d frames dropped, %.1f fps, latency %.0f ms; %s",
                     stats.processed, stats.dropped, stats.fps, stats.latency_ms,
                     ", ".join(f"{k} {v:.1f} ms" for k, v in stats.stages_ms.items()))

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

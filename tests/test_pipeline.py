"""The threaded pipeline on real clips with the real MediaPipe detector (and the shipped 3D
models once they exist): order, back-pressure, the camera policy, errors and shutdown."""
from __future__ import annotations

import logging
import signal
import statistics
import threading
import time

import pytest

from posits.models import manifest
from posits.realtime.capture import LivePacing, VideoSource
from posits.realtime.detect import PoseDetector
from posits.realtime.pipeline import Pipeline
from conftest import NO_PERSON, WALK, UnpluggedVideo

log = logging.getLogger(__name__)

PERIOD = 1 / 30.0


def posits_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("posits-")]


def has_3d_models() -> bool:
    try:
        models = manifest.load()["models"]
    except manifest.ModelError:
        return False
    return "lifter" in models and "smoother" in models


needs_3d = pytest.mark.skipif(not has_3d_models(), reason="no trained lifter/smoother in models/ yet")


@pytest.fixture
def detector():
    with PoseDetector() as det:
        yield det


def test_video_every_frame_in_order(detector):
    """walk.mp4 through capture + MediaPipe: 150 results in order, a person in most frames,
    per-stage timings, nothing dropped, threads gone afterwards."""
    t0 = time.monotonic()
    with Pipeline(VideoSource(WALK), detector) as pipeline:
        results = list(pipeline)
    elapsed = time.monotonic() - t0
    log.info("2D pipeline on walk.mp4: %.1f frames/s, %s", len(results) / elapsed, pipeline.stats)
    assert [r.frame.index for r in results] == list(range(150))
    assert sum(r.pose2d is not None for r in results) >= 0.9 * 150
    assert all(r.pose3d is None for r in results)
    assert all(set(r.timings) == {"capture", "detect"} for r in results)
    assert all(r.timings["detect"] > 0 for r in results)
    stats = pipeline.stats
    assert stats.processed == 150 and stats.dropped == 0
    assert stats.fps > 0 and stats.latency_ms > 0
    assert not pipeline.running and not posits_threads()


def test_no_person_gives_none(detector):
    """A clip with nobody in it: a result for each of the 30 frames, all without a pose."""
    with Pipeline(VideoSource(NO_PERSON), detector) as pipeline:
        results = list(pipeline)
    assert len(results) == 30
    assert all(r.pose2d is None and r.pose3d is None for r in results)


def test_video_slow_consumer_applies_back_pressure(detector):
    """A consumer slower than inference still gets every frame of a file, in order."""
    indices = []
    with Pipeline(VideoSource(NO_PERSON), detector) as pipeline:
        for result in pipeline:
            time.sleep(0.03)
            indices.append(result.frame.index)
    assert indices == list(range(30))
    assert pipeline.stats.dropped == 0


def test_camera_policy_slow_consumer(detector):
    """A file paced like a camera, a consumer 3x slower than its frame rate: frames are
    dropped and counted, latency stays bounded, breaking out stops everything at once."""
    consumer_time = 3 * PERIOD
    latencies, indices = [], []
    with Pipeline(LivePacing(VideoSource(WALK)), detector) as pipeline:
        for result in pipeline:
            latencies.append(time.monotonic() - result.frame.t_capture)
            indices.append(result.frame.index)
            time.sleep(consumer_time)
            if len(indices) == 20:
                t0 = time.monotonic()
                break
    stop_time = time.monotonic() - t0
    stats = pipeline.stats
    assert stats.dropped > 0
    assert indices == sorted(set(indices))
    # a result waits at most one consumer step for the consumer, its frame was at most a
    # period old when inference took it: latency ~ consumer + period + detect, not growing
    expected = consumer_time + PERIOD + max(stats.stages_ms["detect"], 20.0) / 1e3
    assert statistics.median(latencies) < expected, \
        f"median latency {statistics.median(latencies) * 1e3:.0f} ms > {expected * 1e3:.0f} ms"
    assert max(latencies) < 2 * expected, f"latency {max(latencies) * 1e3:.0f} ms"
    assert statistics.mean(latencies[-5:]) < expected, "latency builds up"
    assert stop_time < 2.0
    assert not posits_threads()


def test_worker_exception_reaches_consumer():
    """A detector closed before the run: its RuntimeError surfaces in the consumer thread."""
    detector = PoseDetector()
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        with Pipeline(VideoSource(WALK), detector) as pipeline:
            for _ in pipeline:
                pass
    assert not posits_threads()


def test_capture_exception_reaches_consumer(detector):
    """A read error in the capture thread crosses the inference thread to the consumer,
    after the results of the frames read before it."""
    got = []
    with pytest.raises(OSError, match="unplugged"):
        for result in Pipeline(UnpluggedVideo(WALK), detector):
            got.append(result.frame.index)
    assert got == [0, 1, 2, 3, 4]
    assert not posits_threads()


def test_keyboard_interrupt_in_consumer_shuts_down(detector):
    """Ctrl-C in the consumer loop: the interrupt propagates, both threads are gone and the
    capture is released."""
    source = VideoSource(WALK)
    with pytest.raises(KeyboardInterrupt):
        with Pipeline(source, detector) as pipeline:
            for result in pipeline:
                if result.frame.index == 10:
                    raise KeyboardInterrupt
    assert not pipeline.running and not posits_threads()
    assert source.read() is None


def test_ctrl_c_while_waiting_for_a_result(detector):
    """A real SIGINT while the consumer is blocked waiting for the next result (a slow
    camera): KeyboardInterrupt is raised at once and both threads are gone."""
    pipeline = Pipeline(LivePacing(VideoSource(WALK), speed=0.05), detector)   # 1.5 frames/s
    main = threading.main_thread().ident
    ctrl_c = threading.Timer(0.5, signal.pthread_kill, args=(main, signal.SIGINT))
    got = []
    # Ctrl-C as in a terminal, even when the test run itself was started as a background job
    # (which starts Python with SIGINT ignored, and then KeyboardInterrupt never comes)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t0 = time.monotonic()
        ctrl_c.start()
        with pytest.raises(KeyboardInterrupt):
            with pipeline:
                for result in pipeline:
                    got.append(result.frame.index)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 2.5
    assert got == [0]
    assert not pipeline.running and not posits_threads()


def test_stop_from_another_thread_wakes_consumer(detector):
    """stop() called by another thread (e.g. the window closing) ends the consumer's loop."""
    pipeline = Pipeline(LivePacing(VideoSource(WALK), speed=0.05), detector)   # 1.5 frames/s
    stopper = threading.Timer(0.5, pipeline.stop)
    t0 = time.monotonic()
    stopper.start()
    results = list(pipeline)
    assert time.monotonic() - t0 < 2.0
    assert len(results) <= 2
    assert not posits_threads()


@needs_3d
def test_3d_stage_on_video(detector):
    """With the shipped lifter + LSTM: a 3D pose wherever there is a 2D one, stage timings;
    the pipeline hands the lifter each frame's time (1/30 s apart here), which the LSTM's frame
    interval comes from, not the lifter's nominal rate (set to 15 fps on purpose)."""
    import numpy as np

    from posits.realtime import lift_sequence
    from posits.realtime.lift import PoseLifter
    lifter = PoseLifter(fps=15.0)
    t0 = time.monotonic()
    with Pipeline(VideoSource(WALK), detector, lifter) as pipeline:
        results = list(pipeline)
    elapsed = time.monotonic() - t0
    log.info("2D+3D pipeline on walk.mp4: %.1f frames/s, %s", len(results) / elapsed, pipeline.stats)
    assert [r.frame.index for r in results] == list(range(150))
    assert all((r.pose3d is None) == (r.pose2d is None) for r in results)
    assert all(set(r.timings) == {"capture", "detect", "lift", "lstm"} for r in results)
    poses = [r.pose3d.xyz for r in results if r.pose3d is not None]
    assert len(poses) >= 0.9 * 150
    assert all(p.shape == (33, 3) and p.dtype.name == "float32" for p in poses)
    nan = np.full((33, 3), np.nan, np.float32)
    kp = np.stack([r.pose2d.keypoints if r.pose2d is not None else nan for r in results])
    got = np.stack([r.pose3d.xyz if r.pose3d is not None else nan for r in results])
    with VideoSource(WALK) as source:
        fps = source.fps
    assert fps == pytest.approx(30.0, abs=0.1)
    stage, want = PoseLifter(fps=15.0), []
    for r in results:          # the same 2D, stepped by hand with the frames' times
        pose = stage(r.pose2d, r.frame.index / fps) if r.pose2d is not None else stage(None)
        want.append(pose.xyz if pose is not None else nan)
    np.testing.assert_allclose(got, np.stack(want), atol=1e-5)
    # at the nominal 15 fps (no frame times) the LSTM filters differently
    assert not np.allclose(got, lift_sequence(kp, results[0].frame.size, fps=15.0), atol=1e-3, equal_nan=True)

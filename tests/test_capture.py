"""Capture on real clips: every frame of a file, broken files, a missing camera, and the camera
policy (newest frame wins) with a file paced in real time standing in for the camera."""
from __future__ import annotations

import statistics
import struct
import threading
import time
from pathlib import Path

import cv2
import pytest

from posits.realtime.capture import (CameraSource, CaptureError, Channel, FrameReader, ImagePool, LivePacing,
                                     VideoSource, request_format)
from conftest import NO_PERSON, WALK, UnpluggedVideo

WALK_FRAMES = 150
PERIOD = 1 / 30.0


def posits_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("posits-")]


# -- helpers to make broken copies of a real clip ------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def _atoms(data: bytes | bytearray, start: int, end: int):
    """(type, offset, size, header size) of the MP4 boxes in data[start:end]."""
    i = start
    while i < end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        yield kind, i, size, header
        i += size


def faststart(mp4: bytes) -> bytes:
    """The same MP4 with its index (moov) before the media data, as streamed files have it:
    the chunk offsets in stco/co64 are shifted by the size of the moved moov box."""
    top = list(_atoms(mp4, 0, len(mp4)))
    moov = bytearray(next(mp4[i:i + n] for kind, i, n, _ in top if kind == b"moov"))

    def shift(start: int, end: int) -> None:
        for kind, i, n, header in _atoms(moov, start, end):
            if kind in _CONTAINERS:
                shift(i + header, i + n)
            elif kind in (b"stco", b"co64"):
                width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
                count = struct.unpack(">I", moov[i + 12:i + 16])[0]
                for k in range(count):
                    o = i + 16 + k * width
                    moov[o:o + width] = struct.pack(fmt, struct.unpack(fmt, moov[o:o + width])[0] + len(moov))

    shift(0, len(moov))
    out = b""
    for kind, i, n, _ in top:
        if kind == b"mdat":
            out += bytes(moov)
        if kind != b"moov":
            out += mp4[i:i + n]
    return out


@pytest.fixture(scope="module")
def walk_faststart(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "walk_faststart.mp4"
    path.write_bytes(faststart(WALK.read_bytes()))
    return path


# -- files -----------------------------------------------------------------------------------------

def test_video_properties():
    """walk.mp4 reports its real frame rate, size and length, and is not live."""
    with VideoSource(WALK) as source:
        assert source.fps == pytest.approx(30.0)
        assert source.size == (640, 400)
        assert source.frame_count == WALK_FRAMES
        assert source.is_live is False


def test_video_every_frame_in_order():
    """Policy "all": every frame, in order, with t_source = index / fps and none dropped."""
    with FrameReader(VideoSource(WALK)) as reader:
        assert reader.policy == "all"
        frames = list(reader)
    assert [f.index for f in frames] == list(range(WALK_FRAMES))
    assert all(f.t_source == pytest.approx(f.index / 30.0) for f in frames)
    assert all(f.image.shape == (400, 640, 3) and f.image.dtype.name == "uint8" for f in frames)
    assert [f.t_capture for f in frames] == sorted(f.t_capture for f in frames)
    assert reader.dropped == 0
    assert not posits_threads()


def test_video_slow_consumer_gets_every_frame():
    """Back-pressure: a consumer slower than decoding still gets every frame, the queue stays
    bounded (frames are decoded just ahead of the consumer, not all at once)."""
    with FrameReader(VideoSource(NO_PERSON), queue_size=4) as reader:
        frames = []
        for frame in reader:
            time.sleep(0.01)
            frames.append((frame, time.monotonic()))
    assert [f.index for f, _ in frames] == list(range(30))
    # with a 4-frame queue a frame waits at most ~5 consumer periods (not the whole clip)
    assert max(t - f.t_capture for f, t in frames) < 0.2


def test_video_mirror():
    """mirror=True flips each image left-right."""
    with VideoSource(WALK) as plain, VideoSource(WALK, mirror=True) as mirrored:
        a, b = plain.read(), mirrored.read()
    assert (a.image[:, ::-1] == b.image).all()


def test_decoding_reuses_buffers_nobody_holds():
    """Frames are decoded into a few pooled buffers, reused once nothing references them; a
    frame that is still held (by a list, a view of it) is never overwritten."""
    import cv2
    cap = cv2.VideoCapture(str(WALK))
    reference = [cap.read()[1] for _ in range(40)]
    cap.release()
    with VideoSource(WALK) as source:           # a consumer that lets each frame go
        for expected in reference[:20]:
            frame = source.read()
            assert (frame.image == expected).all()
            del frame
        assert source._pool.allocated <= 2
        kept, views = [], []                    # a consumer that keeps everything
        for i, expected in enumerate(reference[20:]):
            image = source.read().image
            (views if i % 2 else kept).append(image[10:] if i % 2 else image)
            del image
        assert all((a == b).all() for a, b in zip(kept, reference[20::2]))
        assert all((a == b[10:]).all() for a, b in zip(views, reference[21::2]))


def test_image_pool_limit_and_size_change():
    pool = ImagePool(limit=2)
    a = pool.take((4, 4, 3))
    b = pool.take((4, 4, 3))
    assert a is not b
    c = pool.take((4, 4, 3))                    # a, b held, pool full: a new, unkept array
    assert c is not a and c is not b and pool.allocated == 3
    del a, c
    d = pool.take((2, 2, 3))                    # another size replaces the free buffer
    assert d.shape == (2, 2, 3)
    assert pool.take((2, 2, 3)) is not d        # d is held
    del d
    e = pool.take((2, 2, 3))
    assert e.shape == (2, 2, 3) and pool.allocated == 5


@pytest.mark.parametrize("name, content, message", [
    ("missing.mp4", None, "not found"),                # no such file
    ("empty.mp4", b"", "empty"),                       # zero bytes
    ("notes.mp4", b"this is a text file\n" * 50, "not a video"),   # text renamed .mp4
])
def test_bad_files_raise(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptureError, match=message) as info:
        VideoSource(path)
    assert str(path) in str(info.value)


def test_truncated_before_index_raises(tmp_path):
    """walk.mp4 keeps its index (moov) at the end: cut anywhere, OpenCV cannot open it at all."""
    path = tmp_path / "cut.mp4"
    path.write_bytes(WALK.read_bytes()[: WALK.stat().st_size // 2])
    with pytest.raises(CaptureError, match="not a video") as info:
        VideoSource(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fraction", [0.5, 0.05])
def test_truncated_mid_way_ends_cleanly(tmp_path, walk_faststart, fraction):
    """A streamable MP4 cut part-way opens, and reading ends at its last readable frame:
    in order, fewer frames than the header claims, no exception, no hang."""
    data = walk_faststart.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    t0 = time.monotonic()
    with FrameReader(VideoSource(path)) as reader:
        indices = [f.index for f in reader]
    assert time.monotonic() - t0 < 5.0
    assert 0 < len(indices) < WALK_FRAMES
    assert indices == list(range(len(indices)))


def test_missing_camera_raises_quickly():
    """Camera 7 does not exist: CaptureError with the user-facing message, well within 10 s."""
    outcome: dict[str, object] = {}

    def open_camera() -> None:
        try:
            CameraSource(7).release()
            outcome["error"] = None
        except CaptureError as exc:
            outcome["error"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=open_camera, daemon=True)
    thread.start()
    thread.join(10.0)
    assert not thread.is_alive(), "opening a missing camera hung"
    assert time.monotonic() - t0 < 6.0
    assert str(outcome["error"]) == "camera 7 is not available (not connected or busy)"


# -- a file paced like a camera ------------------------------------------------------------------

def test_live_pacing_plays_in_real_time():
    """LivePacing releases frames at the file's frame rate (30 frames ~ 1 s) and is live."""
    source = LivePacing(VideoSource(NO_PERSON))
    assert source.is_live and source.fps == pytest.approx(30.0)
    t0 = time.monotonic()
    with FrameReader(source, policy="all") as reader:
        frames = list(reader)
    elapsed = time.monotonic() - t0
    assert len(frames) == 30
    assert 0.9 < elapsed < 2.0
    # each frame is stamped when released: t_capture follows the source clock
    offsets = [f.t_capture - f.t_source for f in frames]
    assert max(offsets) - min(offsets) < 0.1


def test_latest_policy_drops_stale_frames_and_bounds_latency():
    """A consumer 3x slower than the camera: stale frames are dropped and counted, the frames
    it gets are fresh (no latency builds up), indices only go forward."""
    consumer_time = 3 * PERIOD
    ages, indices = [], []
    with FrameReader(LivePacing(VideoSource(WALK))) as reader:
        assert reader.policy == "latest"
        for frame in reader:
            ages.append(time.monotonic() - frame.t_capture)
            indices.append(frame.index)
            time.sleep(consumer_time)
            if len(indices) == 25:
                break
        dropped = reader.dropped
    assert dropped > 0
    assert indices == sorted(set(indices))
    # ~3 frames arrive per consumer step, 2 of them dropped
    assert indices[-1] - indices[0] > 2 * (len(indices) - 1)
    # the typical frame is less than a period old; none waits for more than a consumer step
    # (a loaded machine may delay the capture thread now and then)
    assert statistics.median(ages) < PERIOD, f"median frame age {statistics.median(ages) * 1e3:.0f} ms"
    assert max(ages) < 2 * PERIOD + consumer_time, f"frame age {max(ages) * 1e3:.0f} ms"
    assert not posits_threads()


def test_stop_is_prompt_while_frames_remain():
    """stop() with most of the clip still to come returns at once, thread joined, released."""
    source = VideoSource(WALK)
    reader = FrameReader(LivePacing(source))
    reader.start()
    assert reader.get() is not None
    t0 = time.monotonic()
    reader.stop()
    assert time.monotonic() - t0 < 2.0
    assert not reader.running and not posits_threads()
    assert source.read() is None            # the capture was released
    assert reader.get() is None             # a stopped reader reports the end


def test_blocked_consumer_wakes_on_stop():
    """A consumer blocked in get() (no frame yet) wakes up when another thread stops."""
    reader = FrameReader(LivePacing(VideoSource(WALK), speed=0.02))    # 1 frame per 1.7 s
    reader.start()
    assert reader.get() is not None         # the first frame comes at once, the next in 1.7 s
    got: list[object] = []
    consumer = threading.Thread(target=lambda: got.append(reader.get()))
    consumer.start()
    time.sleep(0.2)
    reader.stop()
    consumer.join(2.0)
    assert not consumer.is_alive() and got == [None]


def test_stalled_live_source_ends_the_stream(caplog):
    """A live source that stops delivering (here: 1 frame/s, stall limit 0.3 s) ends the
    stream cleanly with a warning instead of leaving the consumer waiting."""
    reader = FrameReader(LivePacing(VideoSource(WALK), speed=1 / 30), stall_timeout=0.3)
    with reader:
        assert reader.get() is not None
        t0 = time.monotonic()
        assert reader.get() is None
        assert 0.25 < time.monotonic() - t0 < 1.0
    assert "no frame for 0.3 s" in caplog.text
    assert not posits_threads()


def test_read_error_reaches_the_consumer():
    """An exception in the capture thread is re-raised by the consumer's get(), after the
    frames read before it."""
    got = []
    with pytest.raises(OSError, match="unplugged"):
        with FrameReader(UnpluggedVideo(WALK)) as reader:
            for frame in reader:
                got.append(frame.index)
    assert got == [0, 1, 2, 3, 4]
    assert not posits_threads()


def test_channel_latest_slot_counts_drops():
    """Channel(1, drop_oldest=True) keeps the newest item and counts what it replaced."""
    slot: Channel[int] = Channel(1, drop_oldest=True)
    for i in range(5):
        assert slot.put(i)
    assert slot.get() == 4 and slot.dropped == 4
    slot.close()
    assert slot.put(5) is False


class _RecordingCapture:
    """Records what a camera driver is asked (``set`` calls, in order); no frames."""

    def __init__(self):
        self.calls: list[tuple[int, float]] = []

    def set(self, prop: int, value: float) -> bool:
        self.calls.append((prop, value))
        return True


def test_camera_format_request_asks_for_mjpg_before_the_mode():
    """A requested size or rate asks for Motion-JPEG first (USB webcams give HD at full rate only
    compressed); with no request the camera's default mode is left alone."""
    cap = _RecordingCapture()
    assert request_format(cap, None, None, None) is False and cap.calls == []
    assert request_format(cap, 1280, 720, 30.0) is True
    assert cap.calls == [(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")),
                         (cv2.CAP_PROP_FRAME_WIDTH, 1280.0), (cv2.CAP_PROP_FRAME_HEIGHT, 720.0),
                         (cv2.CAP_PROP_FPS, 30.0)]
    cap = _RecordingCapture()
    request_format(cap, None, None, 60)
    assert [p for p, _ in cap.calls] == [cv2.CAP_PROP_FOURCC, cv2.CAP_PROP_FPS]
    real = cv2.VideoCapture(str(WALK))      # a capture that cannot change mode is not harmed
    try:
        assert request_format(real, 1280, 720, 30.0) is True
        ok, image = real.read()
        assert ok and image.shape == (400, 640, 3)
    finally:
        real.release()

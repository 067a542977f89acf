"""Frame sources (video file, camera, a file paced like a camera) and the threaded reader.

A *source* is synchronous and owned by one thread: ``read() -> Frame | None`` (None at the end
of the stream), ``release()``, and the properties ``name``, ``fps``, ``size`` (w, h),
``frame_count`` (None when unknown) and ``is_live``.

``FrameReader(source, policy)`` runs ``source.read()`` on a daemon capture thread and hands
frames to one consumer thread through a ``Channel``:

    policy "latest" (live sources): a one-slot buffer; a newer frame replaces an unconsumed
        one, which is counted in ``dropped``. Latency never builds up.
    policy "all" (files): a bounded queue with back-pressure; every frame, in order.

The end of the stream and errors raised by the source are delivered through the same channel
(a read error is re-raised in the consumer by ``get()``). ``stop()`` closes the channel (a
consumer blocked in ``get()`` wakes up and sees the end), joins the thread with a timeout and
releases the capture.

    with FrameReader(VideoSource("walk.mp4")) as reader:
        for frame in reader:
            ...
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

# FFmpeg (inside OpenCV) prints decoder complaints ("moov atom not found", "ac-tex damaged")
# straight to stderr; posits reports problems itself, in one line. Read when FFmpeg starts, so
# it is set before cv2 opens any file. --verbose sets it to FFmpeg's warning level.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .types import Frame  # noqa: E402

log = logging.getLogger(__name__)

Policy = Literal["latest", "all"]

DEFAULT_FPS = 30.0          # used when a file or camera reports no usable frame rate
MAX_FPS = 1000.0            # above this a reported frame rate is taken as garbage


class CaptureError(Exception):
    """A video or camera cannot be opened or read (one-line, user-facing message)."""


class Source(Protocol):
    """What ``FrameReader`` needs from a frame source (read from one thread only)."""

    name: str

    @property
    def fps(self) -> float: ...
    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def frame_count(self) -> int | None: ...
    @property
    def is_live(self) -> bool: ...
    def read(self) -> Frame | None: ...
    def release(self) -> None: ...


def _usable_fps(value: float, name: str) -> float:
    if not (value > 0 and value <= MAX_FPS):          # also rejects NaN
        log.info("%s reports frame rate %r; using %.0f", name, value, DEFAULT_FPS)
        return DEFAULT_FPS
    return float(value)


class ImagePool:
    """Image buffers that a capture source decodes into again once nobody holds them.

    A frame travels through queues to other threads (inference, the consumer) and nobody
    hands it back, so a buffer counts as free when the pool's own reference is the only one
    left (``sys.getrefcount``: a Frame holding it, a numpy view of it and a buffer export all
    hold a reference). Decoding into the same few buffers keeps a long run's memory flat: a
    new (H, W, 3) array per frame from the capture thread, freed on another thread, is the
    kind of allocation that fragments glibc's per-thread heaps. Used from one thread (the
    capture thread). At most ``limit`` buffers are kept; past it (a consumer holding on to
    many frames) ``take`` returns a new array and does not keep it.
    """

    def __init__(self, limit: int = 16):
        self.limit = limit
        self._buffers: list[np.ndarray] = []
        self.allocated = 0          # arrays made (kept or not): frames that reused nothing
        probe = [np.empty(0)]
        self._free = sys.getrefcount(probe[0])      # the list's reference + the argument's

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A free uint8 buffer of ``shape`` (stale content: the caller overwrites all of it)."""
        shape = tuple(shape)
        other = None
        for i in range(len(self._buffers)):     # no local name may hold a buffer here
            if sys.getrefcount(self._buffers[i]) == self._free:
                if self._buffers[i].shape == shape:
                    return self._buffers[i]
                other = i
        self.allocated += 1
        buffer = np.empty(shape, np.uint8)
        if len(self._buffers) >= self.limit:    # full: replace a free one of another size
            if other is None:
                return buffer
            del self._buffers[other]
        self._buffers.append(buffer)
        return buffer


class _OpenCVSource:
    """What the OpenCV-backed sources share: the capture handle, a decoded first frame kept
    for the first read(), decoding into pooled buffers (``_decode``), release() and the
    context manager."""

    _cap: "cv2.VideoCapture | None"
    _pending: "np.ndarray | None"
    _fps: float
    _size: tuple[int, int]
    mirror: bool
    _pool: ImagePool
    _shape: tuple[int, ...]         # of the last decoded image
    _raw: "np.ndarray | None"       # mirror: decoded here, flipped into a pooled buffer

    def _decode(self) -> "np.ndarray | None":
        """The next image (the kept first frame, then the capture's), mirrored if asked, in a
        buffer of the pool; None if the read failed.

        The capture decodes into a free pooled buffer of the last frame's shape (OpenCV
        replaces it by a new array if the stream changes size; that becomes the shape)."""
        if self._pending is not None:
            image, self._pending = self._pending, None
            return cv2.flip(image, 1) if self.mirror else image
        if self._cap is None:
            return None
        if self.mirror:
            ok, raw = self._cap.read(self._raw)
            if not ok or raw is None:
                return None
            self._raw = raw
            return cv2.flip(raw, 1, dst=self._pool.take(raw.shape))
        ok, image = self._cap.read(self._pool.take(self._shape))
        if not ok or image is None:
            return None
        self._shape = image.shape
        return image

    def _start_decoding(self, first: np.ndarray) -> None:
        """Set up ``_decode`` after the first frame (decoded by OpenCV into its own array)."""
        self._pool = ImagePool()
        self._shape = first.shape
        self._raw = None

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class VideoSource(_OpenCVSource):
    """Every frame of a video file, in order (``is_live`` False).

    Args:
        path: any file OpenCV (FFmpeg) reads.
        mirror: flip each image left-right.

    Raises CaptureError (naming the file) when it does not exist, is empty, is not a video or
    its first frame cannot be decoded. A file truncated part-way ends at the last frame OpenCV
    can still read (``frame_count`` then over-counts: it comes from the container header).
    Frames: ``Frame(index, t_capture=time.monotonic(), t_source=index / fps, image)``, image
    (H, W, 3) uint8 BGR.
    """

    is_live = False

    def __init__(self, path: str | Path, mirror: bool = False):
        self.path = Path(path)
        self.name = str(path)
        self.mirror = mirror
        if not self.path.exists():
            raise CaptureError(f"video file not found: {self.path}")
        if not self.path.is_file():
            raise CaptureError(f"not a file: {self.path}")
        if self.path.stat().st_size == 0:
            raise CaptureError(f"video file is empty: {self.path}")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureError(f"not a video OpenCV can open (or truncated before its header "
                               f"was complete): {self.path}")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise CaptureError(f"cannot decode the first frame of video: {self.path}")
        self._pending: np.ndarray | None = first
        self._start_decoding(first)
        self._fps = _usable_fps(self._cap.get(cv2.CAP_PROP_FPS), self.name)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._frame_count = count if count > 0 else None
        self._size = (first.shape[1], first.shape[0])
        self._index = 0

    @property
    def frame_count(self) -> int | None:
        return self._frame_count

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the file (or at a truncation)."""
        image = self._decode()
        if image is None:
            return None
        frame = Frame(index=self._index, t_capture=time.monotonic(),
                      t_source=self._index / self._fps, image=image)
        self._index += 1
        return frame



def request_format(cap: Any, width: int | None, height: int | None, fps: float | None) -> bool:
    """Ask an opened camera for a capture size and frame rate; True if anything was asked.

    With any of them given, Motion-JPEG is asked for first: OpenCV's V4L2 backend otherwise
    takes the uncompressed YUYV format, in which most USB webcams deliver 1280x720 and
    1920x1080 at 5-10 fps (USB 2.0 bandwidth), while their MJPG modes run those sizes at 30 fps
    (opencv/opencv#9540). A camera without MJPG keeps its own format. With none given the
    driver's default mode is kept (640x480 at 30 fps on most webcams, where YUYV is fine and
    costs no JPEG decoding).
    """
    asked = [(prop, value) for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width),
                                                (cv2.CAP_PROP_FRAME_HEIGHT, height),
                                                (cv2.CAP_PROP_FPS, fps)) if value is not None]
    if not asked:
        return False
    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))   # before the size: it picks the modes
    for prop, value in asked:
        cap.set(prop, float(value))
    return True


class CameraSource(_OpenCVSource):
    """Frames from a camera (``is_live`` True), V4L2 on Linux.

    Args:
        index: camera number (/dev/videoN on Linux).
        width, height, fps: requested capture format (the driver may pick another; read the
            properties afterwards).
        mirror: flip each image left-right (selfie view).
        open_timeout: seconds to wait for the first frame.
        stall_timeout: a camera that delivers no frame for this long (reads keep failing) is
            taken as gone: ``read()`` returns None and the stream ends.

    Raises CaptureError "camera N is not available (not connected or busy)" when it cannot be
    opened or gives no first frame within ``open_timeout``. Frames:
    ``Frame(index, t_capture=time.monotonic(), t_source=seconds since the first frame, image)``.
    """

    is_live = True

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, mirror: bool = False,
                 open_timeout: float = 5.0, stall_timeout: float = 2.0):
        self.index = int(index)
        self.name = f"camera {self.index}"
        self.mirror = mirror
        self.stall_timeout = stall_timeout
        unavailable = CaptureError(f"camera {self.index} is not available (not connected or busy)")
        self._cap = self._open(self.index)
        if self._cap is None:
            raise unavailable
        request_format(self._cap, width, height, fps)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)      # the driver's queue adds latency
        first = self._first_frame(self._cap, open_timeout)
        if first is None:
            raise unavailable
        self._pending: np.ndarray | None = first
        self._start_decoding(first)
        self._fps = _usable_fps(self._cap.get(cv2.CAP_PROP_FPS), self.name)
        self._size = (first.shape[1], first.shape[0])
        if ((width is not None and width != self._size[0]) or (height is not None and height != self._size[1])
                or (fps is not None and self._fps < 0.9 * fps)):
            log.warning("%s delivers %dx%d at %.0f fps (asked for %sx%s at %s fps)", self.name,
                        *self._size, self._fps, width or "any", height or "any",
                        f"{fps:g}" if fps is not None else "any")
        self._index = 0
        self._t0: float | None = None

    @staticmethod
    def _open(index: int) -> Any:
        """An opened cv2.VideoCapture, or None; OpenCV's own warnings muted while probing."""
        quiet = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            cap = (cv2.VideoCapture(index, cv2.CAP_V4L2) if sys.platform.startswith("linux")
                   else cv2.VideoCapture(index))
        finally:
            cv2.utils.logging.setLogLevel(quiet)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    @staticmethod
    def _first_frame(cap: Any, timeout: float) -> np.ndarray | None:
        """The first frame, read on a helper thread so a driver that blocks cannot hang us.

        On timeout the capture is released by the helper once its read returns.
        """
        box: dict[str, Any] = {}
        given_up = threading.Event()

        def grab() -> None:
            ok, image = cap.read()
            box["image"] = image if ok else None
            if given_up.is_set():
                cap.release()

        helper = threading.Thread(target=grab, name="posits-camera-open", daemon=True)
        helper.start()
        helper.join(timeout)
        if helper.is_alive() or box.get("image") is None:
            given_up.set()
            if not helper.is_alive():
                cap.release()
            return None
        return box["image"]

    @property
    def frame_count(self) -> int | None:
        return None

    def read(self) -> Frame | None:
        """The next frame; None once the camera has delivered nothing for ``stall_timeout``."""
        deadline = time.monotonic() + self.stall_timeout
        while (image := self._decode()) is None:
            if self._cap is None:
                return None
            if time.monotonic() > deadline:
                log.warning("%s delivered no frame for %.1f s; ending the stream",
                            self.name, self.stall_timeout)
                return None
            time.sleep(0.01)
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        frame = Frame(index=self._index, t_capture=now, t_source=now - self._t0, image=image)
        self._index += 1
        return frame



class LivePacing:
    """Play a file source in real time, like a camera: ``is_live`` True.

    Each frame is held back until its presentation time (``t_source / speed`` after the first
    frame) and stamped with ``t_capture`` = the moment it is released, so a ``FrameReader``
    (policy "latest") drops frames a slow consumer cannot keep up with, exactly as with a
    camera. Used by ``posits-live --video x.mp4`` with pacing and by the tests of the camera
    policy. Frame index and ``t_source`` stay those of the file.

    Args:
        source: a non-live source (e.g. ``VideoSource``); released with this wrapper.
        speed: playback speed (2.0 plays twice as fast).
    """

    is_live = True

    def __init__(self, source: Source, speed: float = 1.0):
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.source = source
        self.name = source.name
        self.speed = speed
        self._t0: float | None = None

    @property
    def fps(self) -> float:
        return self.source.fps * self.speed

    @property
    def size(self) -> tuple[int, int]:
        return self.source.size

    @property
    def frame_count(self) -> int | None:
        return self.source.frame_count

    def read(self) -> Frame | None:
        frame = self.source.read()
        if frame is None:
            return None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - frame.t_source / self.speed
        delay = self._t0 + frame.t_source / self.speed - now
        if delay > 0:
            time.sleep(delay)
        return dataclasses.replace(frame, t_capture=time.monotonic())

    def release(self) -> None:
        self.source.release()

    def __enter__(self) -> "LivePacing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------
# hand-off between threads

T = TypeVar("T")


class _End:
    """End-of-stream marker (a singleton, END)."""

    def __repr__(self) -> str:
        return "END"


END = _End()


@dataclasses.dataclass(frozen=True)
class Failure:
    """An exception raised in a producer thread, carried to the consumer to be re-raised."""

    error: BaseException


class Channel(Generic[T]):
    """A bounded hand-off from one producer thread to one consumer thread.

    Args:
        capacity: items held at most (markers END / Failure may exceed it by one).
        drop_oldest: when full, ``put`` discards the oldest item (counted in ``dropped``)
            instead of blocking: ``Channel(1, drop_oldest=True)`` is a latest-value slot.

    ``close()`` wakes every waiter: a blocked ``put`` returns False and ``get`` returns END.
    """

    def __init__(self, capacity: int, drop_oldest: bool = False):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: collections.deque[T | _End | Failure] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T | _End | Failure) -> bool:
        """Add an item (blocking while full unless drop_oldest); False if the channel closed.

        END and Failure are always accepted at once (they never block nor drop a frame).
        """
        marker = isinstance(item, (_End, Failure))
        with self._cond:
            while not marker and not self._closed and len(self._items) >= self.capacity:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                else:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def wait_for_space(self, timeout: float | None = None) -> bool:
        """Block until an item can be put without waiting; False if closed or timed out."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._closed or len(self._items) < self.capacity,
                                     timeout)
            return bool(ok) and not self._closed

    def get(self, timeout: float | None = None) -> T | _End | Failure | None:
        """The oldest item; END once closed; None if ``timeout`` passed with nothing to get."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._items, timeout):
                return None
            if self._closed:
                return END
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class FrameReader:
    """Reads a source on a daemon capture thread and hands its frames to one consumer.

    Args:
        source: a VideoSource, CameraSource, LivePacing or anything with the Source interface.
            The reader owns it from now on and releases it in ``stop()``.
        policy: "latest" (newest frame wins, drops counted in ``dropped``) or "all" (every
            frame, back-pressure). Default: "latest" for live sources, else "all".
        queue_size: capacity of the queue for policy "all".
        stall_timeout: for a live source, ``get()`` ends the stream when no frame arrived for
            this many seconds (a camera whose read blocks forever). None: wait for ever.
        join_timeout: seconds ``stop()`` waits for the capture thread.

    The thread starts on ``start()`` (or ``__enter__``/the first ``get``). Iterate (or call
    ``get()``) from one consumer thread; ``stop()`` may be called from any thread.
    """

    def __init__(self, source: Source, policy: Policy | None = None, queue_size: int = 4,
                 stall_timeout: float | None = 5.0, join_timeout: float = 2.0):
        self.source = source
        self.policy: Policy = policy or ("latest" if source.is_live else "all")
        if self.policy not in ("latest", "all"):
            raise ValueError(f"policy must be 'latest' or 'all', got {policy!r}")
        latest = self.policy == "latest"
        self._channel: Channel[Frame] = Channel(1 if latest else queue_size, drop_oldest=latest)
        self.stall_timeout = stall_timeout if source.is_live else None
        self.join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"posits-capture[{source.name}]",
                                        daemon=True)
        self._started = False
        self._released = False
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """Frames captured but replaced by a newer one before the consumer took them."""
        return self._channel.dropped

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> "FrameReader":
        with self._lock:
            if not self._started and not self._stop.is_set():
                self._started = True
                self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if not self._channel.put(frame):
                    return                      # closed by stop()
        except BaseException as exc:            # forwarded: re-raised by the consumer's get()
            log.debug("capture thread failed: %r", exc)
            self._channel.put(Failure(exc))
            return
        self._channel.put(END)

    def get(self) -> Frame | None:
        """The next frame, or None at the end of the stream / after ``stop()``.

        Re-raises an exception raised by the source in the capture thread.
        """
        self.start()
        item = self._channel.get(self.stall_timeout)
        if item is None:
            log.warning("%s: no frame for %.1f s; ending the stream", self.source.name,
                        self.stall_timeout)
            self._stop.set()
            return None
        if isinstance(item, Failure):
            raise item.error
        if isinstance(item, _End):
            return None
        return item

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def stop(self) -> None:
        """Stop the capture thread (join with a timeout) and release the source. Idempotent."""
        self._stop.set()
        self._channel.close()
        if self._started and self._thread is not threading.current_thread():
            self._thread.join(self.join_timeout)
        with self._lock:
            if self._released:
                return
            if self._thread.is_alive():
                # a read blocked in the driver: releasing under it could crash; leave it to
                # the daemon thread's end (the process exit at worst)
                log.warning("%s: capture thread did not stop within %.1f s", self.source.name,
                            self.join_timeout)
                return
            self._released = True
        self.source.release()

    def __enter__(self) -> "FrameReader":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Per-stage timing for the live loop, the HUD and the benchmark: one helper, three small parts.

    timings: dict[str, float] = {}
    with profile("detect", timings):
        pose2d = detector(frame.image, frame.t_source)
    stats.add(timings)          # StageStats: running mean per stage, in ms
    fps.tick()                  # FPSMonitor: frames/s over the last N ticks

All times are milliseconds from ``time.perf_counter`` (durations) or seconds from
``time.monotonic`` (timestamps, as in ``Frame.t_capture``). Nothing here is thread-safe on its
own: each object is filled by one thread (the pipeline fills them under its own lock).
"""
from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def profile(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time the ``with`` block and store it as ``timings[name]`` in milliseconds.

    The time is stored even when the block raises, so a failing stage still shows its cost.
    """
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = 1e3 * (time.perf_counter() - t0)


class StageStats:
    """Running mean (and max) of per-frame stage timings, e.g. ``Result.timings`` dicts.

    ``add({"detect": 12.1, "lift": 0.4})`` once per frame; ``mean`` -> {"detect": .., ..} in
    ms over all frames added so far (a stage missing from some frames is averaged over the
    frames that had it).
    """

    def __init__(self) -> None:
        self._sum: dict[str, float] = {}
        self._max: dict[str, float] = {}
        self._n: dict[str, int] = {}

    def add(self, timings: Mapping[str, float]) -> None:
        for name, ms in timings.items():
            self._sum[name] = self._sum.get(name, 0.0) + ms
            self._max[name] = max(self._max.get(name, ms), ms)
            self._n[name] = self._n.get(name, 0) + 1

    @property
    def mean(self) -> dict[str, float]:
        return {name: self._sum[name] / self._n[name] for name in self._sum}

    @property
    def max(self) -> dict[str, float]:
        return dict(self._max)

    def reset(self) -> None:
        self._sum.clear()
        self._max.clear()
        self._n.clear()


class FPSMonitor:
    """Frames per second over the last ``sample_size`` ticks (supervision's FPSMonitor).

    ``tick()`` once per frame (optionally with a ``time.monotonic()`` timestamp); ``fps`` is
    0.0 until two ticks have been seen.
    """

    def __init__(self, sample_size: int = 30) -> None:
        if sample_size < 2:
            raise ValueError(f"sample_size must be >= 2, got {sample_size}")
        self._stamps: deque[float] = deque(maxlen=sample_size)

    def tick(self, t: float | None = None) -> None:
        self._stamps.append(time.monotonic() if t is None else t)

    @property
    def fps(self) -> float:
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        self._stamps.clear()

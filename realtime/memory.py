"""One malloc arena for the whole process (glibc), so a long run's memory stays flat.

Every frame, four threads (capture, MediaPipe's and posits' inference, rendering) allocate and
free image-sized buffers. glibc gives each thread that contends for the heap an arena of its
own, and the arenas fragment: over a 10-minute render-and-record soak (bench/bench_live.py) the
resident memory rose in steps by 0.73 MB/min and was still rising at the end, although nothing
leaks (giving free memory back with malloc_trim every 10 s did not stop it). With a single arena
the same soak stayed flat (+0.008 MB/min over 8 minutes) at the same frame rate. Fixing the
mmap threshold instead (MALLOC_MMAP_THRESHOLD_) also flattened it, but cost 10 % of the frame
rate.

``single_malloc_arena()`` is called first thing by posits-live (and by the benchmark), before
any thread starts. It does nothing where there is no glibc ``mallopt`` (macOS, Windows, musl)
or when the user set ``MALLOC_ARENA_MAX`` themselves.
"""
from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8        # glibc malloc.h


def single_malloc_arena() -> bool:
    """Limit glibc malloc to one arena; True if it was set by this call."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1

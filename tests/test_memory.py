"""single_malloc_arena (realtime/memory.py): threads that allocate share one glibc arena."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_info"), reason="needs glibc")

# Four threads allocate and free image-sized numpy buffers, as the live loop's threads do;
# then glibc's malloc_info lists the heaps (arenas) the process has.
SCRIPT = r"""
import ctypes, sys, threading
import numpy as np
from posits.realtime.memory import single_malloc_arena
if sys.argv[1] == "single":
    print("set", single_malloc_arena())
def work():
    for _ in range(200):
        a = np.ones((480, 640, 3), np.uint8); b = a.copy(); del a, b
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
f = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, f)
libc.fclose(f)
print("heaps", open(sys.argv[2]).read().count("<heap nr="))
"""


def _heaps(mode: str, tmp_path, env=None) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / f"{mode}.xml")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-800:]
    return int(out.stdout.split("heaps")[-1]), out.stdout


@glibc
def test_threads_share_one_arena(tmp_path):
    """With single_malloc_arena() the four threads allocate from the one main heap; without it
    glibc gives them heaps of their own (which fragment over a long run)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    single, text = _heaps("single", tmp_path, env)
    assert "set True" in text and single == 1
    default, _ = _heaps("default", tmp_path, env)
    assert default > 1


@glibc
def test_user_setting_wins(tmp_path):
    """MALLOC_ARENA_MAX set by the user is left alone."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "4"}
    _, text = _heaps("single", tmp_path, env)
    assert "set False" in text

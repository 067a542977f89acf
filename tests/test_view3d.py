"""realtime.view3d: headless EGL rendering of the composite, and the glfw window under Xvfb.

The VisPy backend is chosen once per process, so this process uses EGL and the window tests run
in a subprocess with their own Xvfb display.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import WALK, read_frames
from posits.realtime import overlay, view3d
from posits.realtime.types import Pose3D

SIZE = (1280, 480)
TESTS = Path(__file__).resolve().parent


def color_mask(image: np.ndarray, bgr, tol: int = 40) -> np.ndarray:
    return np.all(np.abs(image.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=-1)


def render_scenarios(out_path: str) -> None:
    """Runs in a fresh interpreter (see the `renders` fixture): renders the test scenes
    headless and saves the images and facts to `out_path` (.npz)."""
    import json

    frame = read_frames(WALK, limit=1)[0]
    pose = view3d.example_pose()
    facts: dict = {"backend": view3d.select_backend(headless=True)}
    images: dict[str, np.ndarray] = {"frame": frame}
    with view3d.PoseView(SIZE, show=False) as view:
        facts.update(view_backend=view.backend, shown=view.shown, closing=view.should_close)
        view.update(frame, pose)
        images["posed"] = view.render()
        out = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        facts["render_into_out"] = view.render(out=out) is out and bool((out == images["posed"]).all())
        images["vispy_full"] = view.canvas.render(alpha=False)[..., ::-1]  # the window's draw
        view.update(frame, None)
        images["empty"] = view.render()
        xyz = pose.xyz.copy()
        xyz[15] = np.nan  # a wrist the lifter could not place
        view.update(np.full((994, 1768, 3), 90, np.uint8), Pose3D(xyz))
        images["big_nan"] = view.render()
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            view.update(frame, pose)
            view.render()
            times.append(time.perf_counter() - t0)
        facts["median_ms"] = 1000 * float(np.median(times))
        facts["threads"] = sorted(Path(f).read_text().strip()
                                  for f in Path("/proc/self/task").glob("*/comm"))
        errors = []
        worker = threading.Thread(target=lambda: _catch(errors, view.update, frame, None))
        worker.start()
        worker.join()
        facts["thread_error"] = errors[0] if errors else ""
        bad = []
        _catch(bad, view.update, np.zeros((10, 10), np.uint8), None)
        facts["bad_image_error"] = bad[0] if bad else ""
    facts["backend_again"] = view3d.select_backend(headless=True)
    np.savez(out_path, facts=json.dumps(facts), **images)


def _catch(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # recorded for the test to check
        errors.append(f"{type(exc).__name__}: {exc}")


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict:
    """Headless renders made in a fresh interpreter: whatever else this pytest process has
    imported (TensorFlow, through mediapipe, breaks Mesa's llvmpipe) cannot affect them."""
    import json

    out = tmp_path_factory.mktemp("view3d") / "renders.npz"
    env = {k: v for k, v in clean_env().items() if k not in ("GALLIUM_DRIVER", "LP_NUM_THREADS")}
    proc = run_python(f"""
        import sys; sys.path.insert(0, {str(TESTS)!r})
        from test_view3d import render_scenarios
        render_scenarios({str(out)!r})
    """, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as data:
        result = {name: data[name] for name in data.files if name != "facts"}
        result.update(json.loads(str(data["facts"])))
    return result


def test_render_into_a_given_array(renders):
    """render(out=buffer) draws the same composite into the caller's array (the live loop)."""
    assert renders["render_into_out"]


def test_llvmpipe_draws_on_the_calling_thread(renders):
    """No llvmpipe worker threads (their cross-thread frees grew the heap in long runs)."""
    assert not [name for name in renders["threads"] if name.startswith("llvmpipe")], renders["threads"]


def test_a_users_llvmpipe_thread_count_is_respected():
    proc = run_python("""
        import os, numpy as np
        from pathlib import Path
        from posits.realtime import view3d
        view3d.select_backend(headless=True)
        with view3d.PoseView((320, 120), show=False) as v:
            v.update(np.zeros((120, 160, 3), np.uint8), view3d.example_pose())
            v.render()
            names = [Path(f).read_text().strip() for f in Path("/proc/self/task").glob("*/comm")]
        print("LP", os.environ["LP_NUM_THREADS"], sum(n.startswith("llvmpipe") for n in names))
    """, {**clean_env(), "LP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LP 2 2" in proc.stdout


def test_headless_backend_is_egl(renders):
    assert renders["backend"] == renders["view_backend"] == renders["backend_again"] == "egl"
    assert renders["shown"] is False and renders["closing"] is False


def test_composite_shape_and_video_panel_is_the_letterboxed_frame(renders):
    out, frame = renders["posed"], renders["frame"]
    assert out.shape == (480, 1280, 3) and out.dtype == np.uint8
    # 640x400 frame in a 640x480 panel: centred, 40 px bands above and below.
    np.testing.assert_array_equal(out[40:440, :640], frame)
    assert np.all(out[:40, :640] == view3d.BACKGROUND_RGB[::-1])


def test_render_matches_what_the_window_draws(renders):
    """render() pastes the frame in numpy; VisPy's own full-canvas draw (the window's picture,
    with the Image visual) must give the same composite."""
    ours, vispy_full = renders["posed"].astype(np.int16), renders["vispy_full"].astype(np.int16)
    assert vispy_full.shape == ours.shape
    assert np.abs(ours - vispy_full).mean() < 1.0


def test_pose_shows_in_3d_half_and_none_hides_it(renders):
    empty, posed = renders["empty"][:, 640:], renders["posed"][:, 640:]
    assert empty.std() > 1.0, "grid and axes stay visible without a pose"
    assert np.any(posed != empty, axis=-1).sum() > 1000
    assert posed.astype(float).var() != pytest.approx(empty.astype(float).var(), rel=0.02)
    for color in (overlay.LEFT_COLOR, overlay.RIGHT_COLOR):
        assert color_mask(empty, color).sum() < 20
        assert color_mask(posed, color).sum() > 150


def test_person_stands_upright_facing_the_viewer(renders):
    panel = renders["posed"][:, 640:]
    left = np.nonzero(color_mask(panel, overlay.LEFT_COLOR))
    right = np.nonzero(color_mask(panel, overlay.RIGHT_COLOR))
    rows = np.concatenate([left[0], right[0]])
    cols = np.concatenate([left[1], right[1]])
    assert rows.max() - rows.min() > 2 * (cols.max() - cols.min())  # tall, not lying down
    assert left[1].mean() > right[1].mean()  # like the video: subject's left on the right
    disp = view3d.to_display(view3d.example_pose().xyz)
    assert disp[0, 1] > disp[27, 1] + 1.0 and disp[0, 2] > disp[23, 2]  # nose up, toward us


def test_partial_nan_pose_and_large_frames(renders):
    out = renders["big_nan"]
    assert out.shape == (480, 1280, 3)
    assert color_mask(out[:, 640:], overlay.LEFT_COLOR).sum() > 100
    assert np.all(out[60:420, 100:540] == 90)  # 1768x994 fitted to 640x360, centred


def test_update_and_render_are_fast(renders):
    print(f"update+render median {renders['median_ms']:.1f} ms")
    assert renders["median_ms"] < 50  # ~4 ms on a quiet machine; loose for shared CI cores


def test_other_threads_may_not_render(renders):
    assert renders["thread_error"].startswith("RuntimeError") and "thread" in \
        renders["thread_error"]


def test_bad_image_is_rejected(renders):
    assert renders["bad_image_error"].startswith("ValueError")


# --- window mode and backend fallback, each in a fresh process ---------------------------------

def run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=timeout,
                          capture_output=True, text=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(extra)
    return env


def test_window_request_without_display_falls_back_to_egl():
    proc = run_python("""
        import logging; logging.basicConfig(level=logging.WARNING)
        from posits.realtime.view3d import PoseView, example_pose
        import numpy as np
        with PoseView((320, 120), show=True) as v:
            v.update(np.zeros((120, 160, 3), np.uint8), example_pose())
            print("BACKEND", v.backend, v.shown, v.render().shape)
    """, clean_env())
    assert proc.returncode == 0, proc.stderr
    assert "BACKEND egl False (120, 320, 3)" in proc.stdout
    assert "no DISPLAY or WAYLAND_DISPLAY" in proc.stderr


def test_tensorflow_in_the_process_does_not_crash_rendering():
    """TensorFlow's bundled LLVM segfaults Mesa's llvmpipe; the view switches to softpipe.
    (Loading Mesa's libLLVM next to TensorFlow also aborts the process at exit whatever the
    driver, so the child leaves with os._exit once its output is flushed.)"""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    env = {k: v for k, v in clean_env().items() if k not in ("GALLIUM_DRIVER", "LP_NUM_THREADS")}
    proc = run_python("""
        import logging; logging.basicConfig(level=logging.WARNING)
        import tensorflow
        import numpy as np
        from posits.realtime import overlay, view3d
        with view3d.PoseView((640, 240)) as v:
            v.update(np.zeros((240, 320, 3), np.uint8), view3d.example_pose())
            out = v.render()
            mask = np.all(np.abs(out.astype(int) - overlay.LEFT_COLOR) < 40, axis=-1)
            print("RENDERED", out.shape, int(mask.sum()), flush=True)
        import os, sys; sys.stderr.flush(); os._exit(0)
    """, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "softpipe" in proc.stderr
    shape, left_pixels = proc.stdout.split("RENDERED ")[1].rsplit(" ", 1)
    assert shape == "(240, 640, 3)" and int(left_pixels) > 30


@pytest.fixture(scope="module")
def xvfb_display():
    """A private Xvfb display, or skip when Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    for number in range(120, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists():
            break
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x900x24",
                             "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.05)
        else:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_window_mode_under_xvfb(xvfb_display):
    """A glfw window shows the composite, recording matches it, Esc requests close."""
    proc = run_python("""
        import numpy as np, vispy
        from vispy.gloo.util import _screenshot
        from posits.realtime.view3d import PoseView, example_pose
        shots = []
        frame = np.full((400, 640, 3), 120, np.uint8)
        with PoseView((1280, 480), show=True) as v:
            print("BACKEND", v.backend, v.shown)
            v.canvas.events.draw.connect(lambda e: shots.append(_screenshot()), position="last")
            for _ in range(5):
                v.update(frame, example_pose())
                out = v.render()
                v.process_events()
            window = shots[-1][..., :3][..., ::-1].astype(int)
            print("DRAWS", len(shots), "DIFF", np.abs(window - out.astype(int)).mean())
            print("CLOSE_BEFORE", v.should_close)
            v.canvas.events.key_press(key=vispy.keys.ESCAPE, text="")
            print("CLOSE_AFTER", v.should_close)
    """, clean_env(DISPLAY=xvfb_display))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines["BACKEND"] == "glfw True"
    draws, diff = lines["DRAWS"].split(" DIFF ")
    assert int(draws) >= 1 and float(diff) < 1.0
    assert lines["CLOSE_BEFORE"] == "False" and lines["CLOSE_AFTER"] == "True"

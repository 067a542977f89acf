"""posits-live end to end on real clips, headless, with the shipped models; and every bad input
and fault the CLI must turn into one clear line and a non-zero exit."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from posits.models import MODELS_DIR, skeleton
from posits.models.normalize import NORMALIZATION_VERSION
from posits.realtime.app import composite_size
from posits.realtime.outputs import load_poses
from conftest import NO_PERSON, WALK, read_frames

LIVE = [sys.executable, "-m", "posits.realtime"]
ENV = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def live(*args, timeout=300, **kw):
    return subprocess.run(LIVE + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, **kw)


def one_error_line(proc, fragment):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("live")
    proc = live("--video", WALK, "--record", out / "out.mp4", "--export", out / "poses.jsonl")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_no_display_runs_headless_and_says_so(walk_run):
    lines = walk_run[1].stderr.strip().splitlines()
    assert len(lines) == 1 and "headless" in lines[0] and "DISPLAY" in lines[0]


def test_export_has_a_row_per_frame(walk_run):
    poses = load_poses(walk_run[0] / "poses.jsonl")
    assert poses["frame"].tolist() == list(range(150))
    np.testing.assert_allclose(poses["time_s"], np.arange(150) / 30.0, atol=1e-4)
    assert poses["landmarks_2d"].shape == poses["pose_3d"].shape == (150, 33, 3)
    found = np.isfinite(poses["pose_3d"]).all(axis=(1, 2))
    assert found.mean() > 0.9
    lines = (walk_run[0] / "poses.jsonl").read_text().splitlines()
    assert len(lines) == 150 and set(json.loads(lines[0])) >= {"frame", "time_s", "landmarks_2d", "pose_3d"}


def test_3d_is_plausible_and_stable(walk_run):
    pose = load_poses(walk_run[0] / "poses.jsonl")["pose_3d"]
    pose = pose[np.isfinite(pose).all(axis=(1, 2))]
    np.testing.assert_allclose(skeleton.hip_center(pose), 0.0, atol=1e-4)   # hip-centred
    bones = skeleton.bone_lengths(pose)                 # (T, 10) limb bones in metres
    mean, std = bones.mean(axis=0), bones.std(axis=0)
    assert ((mean > 0.15) & (mean < 0.6)).all(), mean
    assert (std / mean < 0.15).all(), std / mean
    # upright in camera axes (y down): head above hips above ankles
    assert (pose[:, 0, 1] < 0).mean() > 0.95 and (pose[:, 27:29, 1].mean(1) > 0).mean() > 0.95


def test_recording_frames_size_and_3d_panel(walk_run):
    frames = read_frames(walk_run[0] / "out.mp4")
    w, h = composite_size((640, 400))
    assert len(frames) == 150
    assert frames[0].shape == (h, w, 3)
    right = np.stack([f[:, w // 2:] for f in frames[::15]]).astype(np.float32)
    assert right.std() > 10                             # the 3D panel is not blank
    assert np.abs(np.diff(right, axis=0)).mean() > 0.5   # and it moves with the person


def test_npz_export_and_max_frames(tmp_path):
    proc = live("--video", WALK, "--headless", "--max-frames", 12, "--export", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "p.npz") as z:
        assert {"frame", "time_s", "landmarks_2d", "pose_3d"} <= set(z.files)
        assert z["pose_3d"].shape == (12, 33, 3) and z["frame"].tolist() == list(range(12))


def _limb_stats(pose: np.ndarray) -> tuple[float, float]:
    """(bone-length coefficient of variation, mean joint acceleration in mm/frame²) of a track."""
    pose = pose[np.isfinite(pose).all(axis=(1, 2))]
    bones = skeleton.bone_lengths(pose)
    accel = np.linalg.norm(np.diff(pose[:, list(skeleton.BODY_JOINTS)], n=2, axis=0), axis=-1)
    return float((bones.std(axis=0) / bones.mean(axis=0)).mean()), 1e3 * float(accel.mean())


def test_no_lstm_option(tmp_path, walk_run):
    """Lifter alone: the same person, visibly less smooth than the default (LSTM) output."""
    proc = live("--video", WALK, "--headless", "--no-lstm", "--export", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    raw = load_poses(tmp_path / "p.npz")["pose_3d"]
    default = load_poses(walk_run[0] / "poses.jsonl")["pose_3d"]
    assert raw.shape == default.shape
    assert _limb_stats(raw)[1] > 1.5 * _limb_stats(default)[1]
    assert np.nanmean(np.linalg.norm(raw - default, axis=-1)) < 0.1      # same pose, within 10 cm


def test_no_bone_filter_option(tmp_path, walk_run):
    """Without the bone filter the bones stretch from frame to frame; with it (default) they hold."""
    proc = live("--video", WALK, "--headless", "--no-bone-filter", "--export", tmp_path / "p.npz")
    assert proc.returncode == 0, proc.stderr
    raw = load_poses(tmp_path / "p.npz")["pose_3d"]
    default = load_poses(walk_run[0] / "poses.jsonl")["pose_3d"]
    assert _limb_stats(raw)[0] > 1.5 * _limb_stats(default)[0]
    assert np.nanmean(np.linalg.norm(raw - default, axis=-1)) < 0.1      # same pose, within 10 cm


def test_no_person_is_not_an_error(tmp_path):
    proc = live("--video", NO_PERSON, "--headless", "--export", tmp_path / "p.jsonl")
    assert proc.returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all(r["pose_3d"] is None and r["landmarks_2d"] is None for r in rows)
    assert "no person found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d / "missing.mp4", "not found"),                                  # no such file
    (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty"),  # empty file
    (lambda d: (d / "text.mp4").write_text("not a video\n" * 100) or d / "text.mp4", "video"),
])
def test_bad_video_is_one_line(tmp_path, make, fragment):
    one_error_line(live("--video", make(tmp_path), "--headless"), fragment)


def test_truncated_video_ends_cleanly(tmp_path):
    data = WALK.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    proc = live("--video", cut, "--headless", "--export", tmp_path / "p.jsonl")
    if proc.returncode == 0:
        rows = (tmp_path / "p.jsonl").read_text().splitlines()
        assert 0 < len(rows) <= 150 and "Traceback" not in proc.stderr
    else:                    # OpenCV may refuse a file whose index is at the end
        one_error_line(proc, "cut.mp4")


def test_missing_camera_is_one_line():
    one_error_line(live("--camera", 7, "--headless", timeout=60), "camera 7")


@pytest.mark.parametrize("flag, name, fragment", [
    ("--record", "out.mkv", "unknown extension"),
    ("--export", "poses.csv", "unknown extension"),
    ("--record", "nodir/out.mp4", "nodir"),
    ("--export", "nodir/poses.jsonl", "nodir"),
])
def test_bad_output_path_is_one_line(tmp_path, flag, name, fragment):
    one_error_line(live("--video", WALK, "--headless", flag, tmp_path / name), fragment)


def test_bad_pose_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"\x00" * 1000)
    one_error_line(live("--video", WALK, "--headless", "--pose-model", bad), "bad.task")
    one_error_line(live("--video", WALK, "--headless", "--pose-model", tmp_path / "none.task"), "not found")


def test_incompatible_models_dir_is_one_line(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models, ignore=shutil.ignore_patterns("*.task", "__pycache__", "*.py"))
    (models / "lifter.onnx").write_bytes(b"garbage")
    one_error_line(live("--video", WALK, "--headless", "--models", models), "sha256")
    one_error_line(live("--video", WALK, "--headless", "--models", tmp_path / "nowhere"), "manifest")


def test_models_of_another_normalization_version_are_one_line(tmp_path):
    """A model set trained for another 2D normalization (e.g. version 1, from before the hips
    could be unseen) is refused, not run on inputs it was not trained for."""
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models, ignore=shutil.ignore_patterns("*.task", "__pycache__", "*.py"))
    data = json.loads((models / "manifest.json").read_text())
    for role in ("lifter", "smoother"):
        data["models"][role]["normalization_version"] = NORMALIZATION_VERSION - 1
    (models / "manifest.json").write_text(json.dumps(data))
    one_error_line(live("--video", WALK, "--headless", "--models", models),
                   f"normalization v{NORMALIZATION_VERSION - 1}")


def test_ctrl_c_finalizes_outputs(tmp_path):
    """Interrupt a run part-way: the recording and the export are complete files."""
    long_clip = tmp_path / "long.mp4"
    frames = read_frames(WALK)
    writer = cv2.VideoWriter(str(long_clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 400))
    for f in frames * 6:
        writer.write(f)
    writer.release()
    # SIGINT at its default in the child (as from a terminal), even when this test run was
    # started as a background job with SIGINT ignored, which the child would inherit
    proc = subprocess.Popen(LIVE + ["--video", str(long_clip), "--headless", "--record", str(tmp_path / "o.mp4"),
                                    "--export", str(tmp_path / "p.npz")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "o.mp4").exists():
        time.sleep(0.2)
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Traceback" not in err
    with np.load(tmp_path / "p.npz") as z:
        n = len(z["frame"])
        assert 0 < n < 900 and z["pose_3d"].shape == (n, 33, 3)
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 0


def test_help_and_version():
    for cmd in (LIVE, [sys.executable, "-m", "posits.train"]):
        proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "usage" in proc.stdout
        proc = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "0.1.0" in proc.stdout


def test_slow_source_warns_that_the_lstm_lags(tmp_path):
    """A 10 fps video (the real clip, every third frame) is below the rates the shipped LSTM
    was trained for: one warning line naming the rate and --no-lstm; none with --no-lstm."""
    frames = read_frames(WALK)[::3]
    slow = tmp_path / "slow.mp4"
    writer = cv2.VideoWriter(str(slow), cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    proc = live("--video", slow, "--headless", "--max-frames", 10)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "LSTM" in line]
    assert len(warned) == 1 and "10 fps" in warned[0] and "--no-lstm" in warned[0], proc.stderr
    proc = live("--video", slow, "--headless", "--max-frames", 10, "--no-lstm")
    assert proc.returncode == 0 and "LSTM" not in proc.stderr, proc.stderr

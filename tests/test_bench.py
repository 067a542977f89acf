"""bench/bench_live.py: one short real run end to end (in a subprocess: it renders, and this
pytest process may hold TensorFlow), and its input preparation and quality metrics on real data.

No speed thresholds: the machine is shared and noisy. The invariants are that every section is
there, every number is finite and positive where it must be, and the headline ratios are
computed from the parts printed next to them.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import WALK
from posits.models import MODELS_DIR, skeleton

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "bench_live.py"
ENV = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_live", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _shipped_3d_models() -> bool:
    models = json.loads((MODELS_DIR / "manifest.json").read_text())["models"]
    return {"lifter", "smoother"} <= set(models)


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """60 frames, one round, a 9-second soak: every section, as fast as it gets."""
    if not _shipped_3d_models():
        pytest.skip("the shipped manifest has no lifter/smoother yet")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--frames", "60", "--rounds", "1",
                           "--soak-minutes", "0.15", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, env=ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_report_has_every_section(short_run):
    proc, report = short_run
    for heading in ("# posits live benchmark", "Machine:", "Input:", "## Throughput", "## Targets",
                    "## 3D quality", "## Webcam framing", "## Memory"):
        assert heading in proc.stdout, heading
    assert "Traceback" not in proc.stderr
    assert set(report) >= {"machine", "input", "runs", "throughput", "onnx", "targets", "quality",
                           "framing", "memory"}
    assert report["input"]["frames"] == 60 and report["input"]["size"] == [640, 480]
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]


def test_throughput_numbers(short_run):
    _, report = short_run
    th = report["throughput"]
    assert set(th) == {"decode", "(i)", "(ii)", "(iii)", "(iii*)"}
    for name, s in th.items():
        assert finite_positive(s["fps_best"]) and finite_positive(s["frame_ms"]), name
        assert s["fps_best"] >= s["fps_median"] > 0
        assert all(math.isfinite(v) and v >= 0 for v in s["stages_ms"].values()), name
    for name in ("(i)", "(ii)", "(iii)"):
        assert finite_positive(th[name]["stages_ms"]["detect"])
    for name in ("(ii)", "(iii)"):
        assert finite_positive(th[name]["stages_ms"]["lift"])
        assert finite_positive(th[name]["stages_ms"]["lstm"])
    iii = th["(iii)"]["stages_ms"]
    parts = iii["annotate"] + iii["update"] + iii["draw"] + iii["write"]
    assert iii["render"] >= 0.95 * parts and finite_positive(iii["render"])
    runs = {r["variant"]: r for r in report["runs"]}
    assert runs["(iii)"]["frames_written"] == runs["(iii)"]["frames"] == 60
    assert runs["(iii)"]["recording_bytes"] > 0
    assert runs["(iii*)"]["frames"] == 60 and runs["(i)"]["frames"] == runs["(ii)"]["frames"] == 60


def test_targets_are_computed_from_their_parts(short_run):
    _, report = short_run
    t, th = report["targets"], report["throughput"]
    ratio = t["throughput_ratio"]
    runs = report["runs"]                    # one round: decode, (i), (ii), (iii), (iii*)
    same_round = next(r for r in runs if r["variant"] == "(ii)")["fps"] / \
        next(r for r in runs if r["variant"] == "(i)")["fps"]
    assert ratio["paired_rounds"] == [pytest.approx(same_round)]
    assert ratio["value"] == ratio["paired_median"] == pytest.approx(same_round)
    assert ratio["best_rounds"] == pytest.approx(th["(ii)"]["fps_best"] / th["(i)"]["fps_best"])
    assert ratio["ok"] == (ratio["value"] >= 0.95)
    share = t["lift_share_pct"]
    lift = th["(ii)"]["stages_ms"]["lift"] + th["(ii)"]["stages_ms"]["lstm"]
    assert share["lift_lstm_ms"] == pytest.approx(lift)
    assert share["value"] == pytest.approx(100 * lift / th["(ii)"]["frame_ms"])
    assert 0 < share["value"] < 100
    assert share["poselifter_call_ms"] == report["onnx"]["poselifter_ms"]["median"]
    assert share["poselifter_call_pct"] == pytest.approx(
        100 * share["poselifter_call_ms"] / th["(ii)"]["frame_ms"])
    assert t["render_fps"]["value"] == pytest.approx(th["(iii*)"]["fps_best"])
    onnx = report["onnx"]
    assert t["onnx_ms"]["value"] == onnx["ort_ms"]["median"]
    assert finite_positive(onnx["ort_ms"]["median"]) and onnx["frames"] > 30
    # the whole PoseLifter call does the ORT work and more
    assert onnx["poselifter_ms"]["median"] > 0.5 * onnx["ort_ms"]["median"]
    # the same call after sleeping one MediaPipe frame: measured, and reported with the share
    assert onnx["idle_ms"] == pytest.approx(th["(i)"]["frame_ms"])
    assert finite_positive(onnx["poselifter_after_idle_ms"]["median"])
    assert share["poselifter_after_idle_ms"] == onnx["poselifter_after_idle_ms"]["median"]


def test_quality_numbers(short_run):
    _, report = short_run
    q = report["quality"]
    assert q["frames_used"] > 30
    for who in ("mediapipe", "posits"):
        for key in ("bone_std_mm", "bone_cv_pct", "accel_mm"):
            assert finite_positive(q[who][key]), (who, key)
        assert 150 < q[who]["bone_mean_mm"] < 600        # human limb bones, in mm
        assert len(q[who]["per_bone_std_mm"]) == len(skeleton.LIMB_BONES)
    for key, ratio in q["ratios"].items():
        assert ratio == pytest.approx(q["posits"][key] / q["mediapipe"][key])
    for name in ("lag_posits_vs_world", "lag_posits_vs_2d", "lag_world_vs_2d"):
        lag = q[name]
        assert -5 <= lag["lag_frames"] <= 5 and abs(lag["lag_frames_refined"]) <= 6
        assert lag["lag_ms"] == pytest.approx(lag["lag_frames"] * 1000 / 30)
        assert -1 <= lag["corr_at_lag"] <= 1 and lag["corr_at_lag"] >= lag["corr_at_zero"]


def test_framing_numbers(short_run):
    _, report = short_run
    fr = report["framing"]
    assert fr["frames"] == 60 and fr["frames_framed"] > 40 and fr["close_frames_with_person"] > 30
    for who in ("posits", "mediapipe"):
        assert fr[who]["frames"] > 30
        assert 1 < fr[who]["upper_body_diff_mm_median"] < 1000 and 1 < fr[who]["upper_body_diff_mm_mean"] < 1000
    assert 0 <= fr["close_hip_visibility_median"] <= 1 and 0 <= fr["close_hip_below_005_pct"] <= 100


def test_close_up_crops_cut_between_shoulders_and_hips(walk_poses):
    """The webcam crop of real frames: 4:3, the head inside, the hips below the bottom edge."""
    kp = np.stack([p.keypoints if p is not None else np.full((33, 3), np.nan) for p in walk_poses])
    boxes = bench.crop_boxes(kp)
    ok = np.isfinite(boxes).all(axis=1)
    assert ok.sum() > 0.9 * np.isfinite(kp).all(axis=(1, 2)).sum()
    b, k = boxes[ok], kp[ok]
    np.testing.assert_allclose((b[:, 2] - b[:, 0]) / (b[:, 3] - b[:, 1]), 4 / 3)
    assert (k[:, 0, 1] > b[:, 1]).mean() > 0.95 and (k[:, 0, 1] < b[:, 3]).mean() > 0.95    # nose
    assert (k[:, [23, 24], 1].mean(axis=1) > b[:, 3]).mean() > 0.95                          # hips
    image = np.full((400, 640, 3), 200, np.uint8)
    assert bench.crop_image(image, b[0]).shape == (480, 640, 3)


def test_memory_numbers(short_run):
    _, report = short_run
    mem = report["memory"]
    assert finite_positive(mem["rss_start_mb"]) and finite_positive(mem["rss_end_mb"])
    assert mem["rss_max_mb"] >= max(mem["rss_start_mb"], mem["rss_end_mb"])
    assert math.isfinite(mem["slope_mb_per_min"]) and mem["frames"] > 0 and mem["loops"] >= 0
    assert mem["samples"] >= 5
    assert mem["loop"] == "render+record" and mem["recording_bytes"] > 0


def test_soak_without_recording(tmp_path):
    """--soak-no-record soaks the same render loop with no recorder (nothing is written)."""
    if not _shipped_3d_models():
        pytest.skip("the shipped manifest has no lifter/smoother yet")
    code = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from bench import bench_live as b
clip = b.prepare_clip(Path({str(WALK)!r}), 30, (320, 240), Path({str(tmp_path)!r}))
out = b.soak(clip, 0.05, None, None, 1, Path({str(tmp_path)!r}), record=False)
print(json.dumps({{k: v for k, v in out.items() if k != "rss_trace"}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mem = json.loads(proc.stdout.strip().splitlines()[-1])
    assert mem["loop"] == "render (no recording)" and mem["recording_bytes"] == 0
    assert mem["frames"] > 0 and finite_positive(mem["rss_end_mb"])
    assert not (tmp_path / "soak.mp4").exists()


def test_prepare_clip_letterboxes_and_loops(tmp_path):
    clip = bench.prepare_clip(WALK, 200, (640, 480), tmp_path)
    assert clip.source_size == (640, 400) and clip.size == (640, 480) and clip.fit == "letterbox"
    assert clip.frames == 200 and clip.source_frames == 150 and clip.seams == [150]
    cap = cv2.VideoCapture(str(clip.path))
    ok, first = cap.read()
    n = 1
    while cap.read()[0]:
        n += 1
    assert ok and first.shape == (480, 640, 3) and n == 200
    assert first[:30].max() < 20 and first[-30:].max() < 20       # black bars, picture between
    assert first[100:380].std() > 10
    assert "letterboxed" in clip.describe() and "looped" in clip.describe()


def test_lag_and_steadiness_metrics_on_real_landmarks(walk_poses):
    """The lag estimator finds a known shift of MediaPipe's real world trajectory, both ways."""
    world = np.stack([p.world if p is not None else np.full((33, 3), np.nan) for p in walk_poses])
    y = world[:, list(bench.LAG_JOINTS), 1].astype(np.float64)
    assert bench.estimate_lag(y, y)["lag_frames"] == 0
    for shift in (3, -2):
        delayed = np.roll(y, shift, axis=0)              # delayed[t] = y[t - shift]
        lo, hi = max(shift, 0), len(y) + min(shift, 0)
        delayed[:lo] = np.nan
        delayed[hi:] = np.nan
        lag = bench.estimate_lag(delayed, y)
        assert lag["lag_frames"] == shift and lag["corr_at_lag"] > 0.99
    # a rigid pose moving at constant velocity: no bone-length change, no acceleration
    rigid = world[np.isfinite(world).all(axis=(1, 2))][0].astype(np.float64)
    moving = rigid[None] + np.linspace(0, 1, 40)[:, None, None] * np.array([0.3, 0.0, 0.1])
    assert bench.bone_stability(moving)["bone_std_mm"] == pytest.approx(0, abs=1e-6)
    assert bench.mean_acceleration(moving) == pytest.approx(0, abs=1e-6)


def test_memory_summary_tells_a_leak_from_steps():
    """A heap that steps up twice and then stays flat (what the 10-minute soaks showed) has a
    positive slope but no growth in its second half; a steady leak grows in both."""
    t = np.arange(0, 600.0)
    steps = 480 + 2.0 * (t > 120) + 3.0 * (t > 250)
    leak = 480 + 0.01 * t
    s = bench.memory_summary(list(zip(t, steps)), warmup_s=60)
    assert s["slope_mb_per_min"] > 0.3 and s["second_half_growth_mb"] == 0.0 and s["peak_reached_s"] == 251
    k = bench.memory_summary(list(zip(t, leak)), warmup_s=60)
    assert k["second_half_growth_mb"] > 2.5 and k["peak_reached_s"] == 599 and k["last_sample_s"] == 599
    assert k["slope_mb_per_min"] == pytest.approx(0.6, rel=1e-6)

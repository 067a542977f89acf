"""posits-train end to end with --quick: training lowers the validation loss, the ONNX export
matches Keras (lifter outputs, and the LSTM stepped frame by frame vs the full sequence), the
report and manifest are complete, and run directories behave (exists, resume, install)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from posits.models import MODELS_DIR, manifest
from posits.models.normalize import NORMALIZATION_VERSION

TRAIN = [sys.executable, "-m", "posits.train"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run_dir = root / "run"
    proc = subprocess.run(TRAIN + ["--quick", "--run-dir", str(run_dir), "--cache-dir", str(root / "cache")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir, root, proc


def test_run_directory_contents(quick_run):
    run_dir, _, proc = quick_run
    for name in ("config.json", "log.txt", "data.json", "search_lifter.json", "search_smoother.json",
                 "best_params.json", "checkpoints/lifter.weights.h5", "checkpoints/smoother.weights.h5",
                 "export/lifter.onnx", "export/smoother.onnx", "export/manifest.json", "report.json", "report.md"):
        assert (run_dir / name).is_file(), name
    assert "lifter + LSTM" in proc.stdout                      # the table is printed


def test_training_lowers_validation_loss(quick_run):
    fit = json.loads((quick_run[0] / "checkpoints" / "fit.json").read_text())
    for part in ("lifter", "smoother", "baseline"):
        val = fit[part]["history"]["val_loss"]
        assert min(val) < val[0], f"{part}: {val}"
    trials = json.loads((quick_run[0] / "search_lifter.json").read_text())
    assert len(trials) == 2 and all(np.isfinite(t["score"]) for t in trials)


def test_export_parity_on_real_motion(quick_run):
    """Recompute parity here on validation sequences (real mocap, held out from training)."""
    from posits.train import export, fit
    from posits.train.config import TrainConfig
    from posits.train.run import Run
    run = Run(quick_run[0], TrainConfig.load(quick_run[0] / "config.json"), quick_run[1] / "cache")
    lifter, seq, _, _, _ = run._models()
    d = run.data
    w = lifter.inputs[0].shape[1]
    x = fit.gather_windows(d.val_x, np.arange(len(d.val_x)), np.full(len(d.val_x), d.val_x.shape[1] - 1), w)
    assert export.lifter_parity(lifter, quick_run[0] / "export" / "lifter.onnx", x) < 1e-4
    lifted = fit.lift_sequences(lifter, d.val_x[:8])
    assert export.smoother_parity(seq, quick_run[0] / "export" / "smoother.onnx", lifted, d.val_x[:8],
                                  dt=np.geomspace(0.5, 2.0, 8)) < 1e-4


def test_lstm_learns_from_an_even_spread_of_its_own_sequences(quick_run):
    """With data.smoother_fps set (the default) the LSTM learns from sequences of its own (half
    as many as the lifter's), each the motion seen by a camera at a rate in that range, its
    frame interval kept; with smoother_sequences below their number it gets an evenly spread
    subset (real sequences come first, synthetic ones after: both must be in it). Without it,
    from the lifter's sequences, at 30 fps."""
    from dataclasses import replace
    from posits.train.config import TrainConfig
    from posits.train.run import Run
    config = TrainConfig.load(quick_run[0] / "config.json")
    assert config.data.smoother_fps == (15.0, 60.0)
    run = Run(quick_run[0], config, quick_run[1] / "cache")
    d = run.data
    n = len(d.smoother_x)
    assert n == config.data.real_sequences // 2 + config.data.synth_sequences // 2
    assert d.smoother_x.shape[1:] == d.train_x.shape[1:] and d.smoother_y.shape == d.smoother_x.shape
    assert d.smoother_dt.shape == (n,) and 0.5 <= d.smoother_dt.min() < 0.7 and 1.5 < d.smoother_dt.max() <= 2.0
    assert len(run._smoother_data().train_x) == n            # the quick data is smaller: all of it
    run.cfg = replace(config, smoother_sequences=n // 3)
    sub = run._smoother_data()
    assert n // 3 - 1 <= len(sub.train_x) <= n // 3 and len(sub.train_y) == len(sub.train_x)
    np.testing.assert_array_equal(sub.train_x, d.smoother_x[::3])
    np.testing.assert_array_equal(sub.train_y, d.smoother_y[::3])
    np.testing.assert_array_equal(sub.train_dt, d.smoother_dt[::3])
    assert sub.val_x is d.val_x
    # a longer frame interval: larger frame-to-frame motion, about in proportion
    step = np.linalg.norm(np.diff(d.smoother_y, axis=1), axis=-1).mean(axis=(1, 2))
    slow, fast = d.smoother_dt > 1.4, d.smoother_dt < 0.7
    assert step[slow].mean() > 1.5 * step[fast].mean()
    run._data = replace(d, smoother_x=None, smoother_y=None, smoother_dt=None)   # smoother_fps None
    run.cfg = replace(config, smoother_sequences=len(d.train_x) // 2)
    assert run._smoother_data().train_dt is None
    np.testing.assert_array_equal(run._smoother_data().train_x, d.train_x[::2])


def test_manifest_describes_exports(quick_run):
    data = manifest.load(quick_run[0] / "export")
    for role in ("lifter", "smoother"):
        path, entry = manifest.resolve(role, quick_run[0] / "export")
        assert entry["normalization_version"] == NORMALIZATION_VERSION and entry["hyperparameters"]
        assert entry["data"]["test_clips"] and entry["metrics"]["lifter + LSTM"]["pa_mpjpe_mm"] > 0
        assert {i["name"] for i in entry["inputs"]} >= ({"keypoints"} if role == "lifter" else {"h_in", "c_in", "dt"})
    assert set(data["models"]) == {"lifter", "smoother"}


def test_report_compares_methods(quick_run):
    report = json.loads((quick_run[0] / "report.json").read_text())
    assert set(report["methods"]) == {"mean pose", "2D at constant depth", "MLP baseline (1 frame)",
                                      "lifter (CNN)", "lifter + LSTM", "lifter + LSTM + bone lengths"}
    for scores in report["methods"].values():
        assert all(np.isfinite(v) and v >= 0 for v in scores.values())
    assert "cmu/playground" in report["test_clips"]
    assert len(report["per_joint_mpjpe_mm"]) == 33
    close = report["close_up"]                      # webcam close-ups are scored on their own
    assert set(close["methods"]) == {"lifter (CNN)", "lifter + LSTM", "lifter + LSTM + bone lengths"}
    assert close["test_views"] >= 1 and close["test_frames"] > 0
    assert all(np.isfinite(v) and v > 0 for s in close["methods"].values() for v in s.values())
    seated = report["seated"]                       # so is held-out synthetic seated motion
    assert set(seated["methods"]) == {"MLP baseline (1 frame)", "lifter (CNN)", "lifter + LSTM",
                                      "lifter + LSTM + bone lengths"}
    assert seated["test_views"] == 4 and seated["test_frames"] == 4 * 300
    assert all(np.isfinite(v) and v > 0 for s in seated["methods"].values() for v in s.values())
    assert not any(c.startswith("synth/") for c in report["test_clips"])
    low = report["low_fps"]                         # and the held-out clips seen at 15 fps
    assert set(low["methods"]) == {"lifter (CNN)", "lifter + LSTM", "lifter + LSTM + bone lengths"}
    assert low["fps"] == 15.0 and low["test_views"] == 4 and low["test_frames"] > 0
    assert all(np.isfinite(v) and v > 0 for s in low["methods"].values() for v in s.values())
    assert "seated motion (synthetic" in (quick_run[0] / "report.md").read_text()
    # the release targets, computed from the numbers above and printed with the tables
    tg = {t["measure"]: t for t in report["targets"]}
    lstm = report["methods"]["lifter + LSTM"]
    assert tg["lifter + LSTM PA-MPJPE mm"]["value"] == lstm["pa_mpjpe_mm"]
    assert tg["lifter + LSTM MPJPE mm"]["value"] == lstm["mpjpe_mm"]
    assert tg["accel error, lifter + LSTM / lifter"]["value"] == report["accel_ratio_lstm_vs_lifter"]
    assert tg["ONNX Runtime lifter + LSTM step, 1 thread, ms"]["value"] == report["onnx_latency"]["total_ms"]
    assert all(t["met"] == (t["value"] <= t["at_most"]) for t in tg.values())
    assert "| target (whole-body views) |" in (quick_run[0] / "report.md").read_text()


def test_lifter_finalists_fitted_and_best_kept(quick_run):
    """The search's best distinct trials are each fitted in full with `lifter_seeds` seeds; the
    lifter kept (its params in best_params and the manifest) is the fit with the lowest
    validation loss."""
    from posits.train.config import QUICK
    params = json.loads((quick_run[0] / "best_params.json").read_text())
    trials = json.loads((quick_run[0] / "search_lifter.json").read_text())
    finals = params["lifter_finals"]
    seeds = list(range(QUICK.seed, QUICK.seed + QUICK.lifter_seeds))
    assert len(seeds) == 2                          # the quick run exercises the seed loop
    assert [(f["params"], f["seed"]) for f in finals] == [(p, s) for p in params["lifter_finalists"] for s in seeds]
    assert len(params["lifter_finalists"]) == min(2, len({json.dumps(t["params"], sort_keys=True) for t in trials}))
    assert finals[0]["params"] == min(trials, key=lambda t: t["score"])["params"]
    best = min(finals, key=lambda f: f["val_loss"])
    assert (params["lifter"], params["lifter_seed"]) == (best["params"], best["seed"])
    assert len({f["val_loss"] for f in finals}) == len(finals)      # the seeds gave different fits
    assert manifest.load(quick_run[0] / "export")["models"]["lifter"]["hyperparameters"] == params["lifter"]


def test_existing_run_dir_is_refused_then_resumed(quick_run):
    run_dir = str(quick_run[0])
    proc = subprocess.run(TRAIN + ["--quick", "--run-dir", run_dir], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "exists" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(TRAIN + ["--run-dir", run_dir, "--resume", "--cache-dir", str(quick_run[1] / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.count("...") == 0                      # every stage was already done


def test_install_merges_into_a_models_folder(quick_run, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    shutil.copy(MODELS_DIR / "manifest.json", target)
    shutil.copy(MODELS_DIR / "pose_landmarker_full.task", target)
    proc = subprocess.run(TRAIN + ["install", "--run-dir", str(quick_run[0]), "--models-dir", str(target)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    roles = set(manifest.load(target)["models"])
    assert roles >= {"pose_landmarker", "lifter", "smoother"}
    for role in roles:
        manifest.resolve(role, target)                         # every file matches its entry
    from posits.realtime.lift import lift_sequence
    kp = np.full((5, 33, 3), np.nan, np.float32)
    assert np.isnan(lift_sequence(kp, (640, 480), models_dir=target)).all()


@pytest.mark.parametrize("args, message", [
    (["--config", "/nonexistent.json"], "bad config"),            # missing config file
    (["install"], "install needs --run-dir"),                      # install without a run
    (["install", "--run-dir", "/nonexistent/run"], "no run in"),   # install from a non-run
])
def test_bad_invocations_are_one_line_errors(args, message):
    proc = subprocess.run(TRAIN + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_config_values(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lifter_trials": "many"}))
    proc = subprocess.run(TRAIN + ["--config", str(cfg), "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "lifter_trials" in proc.stderr
    cfg.write_text(json.dumps({"no_such_key": 1}))
    proc = subprocess.run(TRAIN + ["--config", str(cfg), "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no_such_key" in proc.stderr


def test_config_number_fields():
    """The PA weight is a number (an integer is taken as one); a negative or non-number is refused
    by name; integer fields stay integers."""
    from posits.train.config import TrainConfig
    assert TrainConfig.from_json({"lifter_pa_weight": 0.5}).lifter_pa_weight == 0.5
    assert TrainConfig.from_json({"lifter_pa_weight": 2}).lifter_pa_weight == 2.0
    assert TrainConfig.from_json({"seed": 0, "lifter_seeds": 1}).lifter_seeds == 1
    for bad in ({"lifter_pa_weight": -1.0}, {"lifter_pa_weight": "x"}, {"fit_epochs": 1.5}, {"fit_epochs": True},
                {"lifter_seeds": 0}, {"lifter_finalists": 0}, {"seed": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig.from_json(bad)

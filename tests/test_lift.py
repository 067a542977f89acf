"""The ONNX 3D stage with the shipped models: lift_sequence on real MediaPipe landmarks."""
from __future__ import annotations

import numpy as np
import pytest

from posits.models import manifest, skeleton
from posits.models.manifest import ModelError
from posits.realtime import lift_sequence
from posits.realtime.lift import Lifter, PoseLifter, Smoother


@pytest.fixture(scope="module")
def walk_kp(walk_poses):
    return np.stack([p.keypoints if p is not None else np.full((33, 3), np.nan, np.float32)
                     for p in walk_poses])


def test_lift_sequence_shapes_units_and_gaps(walk_kp):
    kp = walk_kp.copy()
    kp[40:45] = np.nan                                  # a gap: no person for 5 frames
    out = lift_sequence(kp, (640, 400), fps=30.0)
    assert out.shape == (150, 33, 3) and out.dtype == np.float32
    assert np.isnan(out[40:45]).all()
    ok = np.isfinite(out).all(axis=(1, 2))
    assert ok.sum() == 145
    np.testing.assert_allclose(skeleton.hip_center(out[ok]), 0.0, atol=1e-5)
    height = out[ok][:, :, 1].max(axis=1) - out[ok][:, :, 1].min(axis=1)
    assert 1.0 < np.median(height) < 2.2                 # a person, in metres


def test_lift_sequence_resets_after_a_gap(walk_kp):
    """After a gap the output equals a fresh run started at that frame (state reset)."""
    kp = walk_kp.copy()
    kp[60:62] = np.nan
    full = lift_sequence(kp, (640, 400))
    fresh = lift_sequence(kp[62:], (640, 400))
    np.testing.assert_allclose(full[62:], fresh, atol=1e-5)


def test_lstm_steps_match_lifter_plus_state(walk_kp):
    """The smoother changes the lifter's output but stays close to it (a refinement)."""
    lifted = lift_sequence(walk_kp, (640, 400), use_lstm=False)
    smoothed = lift_sequence(walk_kp, (640, 400))
    diff = np.linalg.norm(smoothed - lifted, axis=-1)
    assert 0 < np.nanmean(diff) < 0.1
    acc = lambda p: np.nanmean(np.linalg.norm(np.diff(p, 2, axis=0), axis=-1))  # noqa: E731
    assert acc(smoothed) < acc(lifted)                  # steadier


def test_bound_buffers_match_plain_session_runs(walk_kp):
    """PoseLifter's per-frame path (buffers bound to ONNX Runtime, window shifted in place,
    smoother state fed back) gives what plain session runs on freshly built inputs give,
    across a reset; every returned pose is an array of its own."""
    from collections import deque

    from posits.models.normalize import denormalize_3d, normalize_2d
    from posits.realtime.types import Pose2D
    stage = PoseLifter(bones=False)
    lifter, smoother, window = stage.lifter.model, stage.smoother.model, stage.lifter.window
    got, want = [], []
    for frames in (walk_kp[:40], walk_kp[90:130]):          # a new track after the reset
        stage(None)
        history: deque = deque(maxlen=window)
        state = None
        for kp in frames:
            got.append(stage(Pose2D(keypoints=kp)).xyz)
            x = normalize_2d(kp)
            history.extend([x] * (window if not history else 1))
            pose = lifter(keypoints=np.stack(history)[None])["pose"]
            if state is None:                                # zero, except y_in = first pose
                state = {n: np.zeros((1, *smoother.inputs[n][1:]), np.float32)
                         for n in stage.smoother.state_names}
                if "y_in" in state:
                    state["y_in"] = pose.copy()
            dt = {"dt": np.ones((1, 1), np.float32)} if stage.smoother.takes_dt else {}   # 30 fps
            out = smoother(pose_in=pose, keypoints=x[None], **dt, **state)
            state = {n: out[n[:-3] + "_out"] for n in state}
            want.append(denormalize_3d(out["pose"][0]))
    np.testing.assert_allclose(np.stack(got), np.stack(want), atol=1e-6)
    assert not any(np.shares_memory(a, b) for a, b in zip(got, got[1:]))


def test_input_validation():
    with pytest.raises(ValueError):
        lift_sequence(np.zeros((5, 17, 3)), (640, 480))
    with pytest.raises(ValueError):
        lift_sequence(np.zeros((5, 33, 3)), (0, 480))


def test_models_load_through_manifest_and_refuse_garbage(tmp_path):
    stage = PoseLifter()
    assert stage.lifter.window >= 1 and stage.smoother.units > 0
    path, _ = manifest.resolve("lifter")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load ONNX"):
        Lifter(bad)
    with pytest.raises(ModelError, match="expected"):
        Smoother(path)                                  # a lifter is not a smoother


def test_bone_length_filter_keeps_lengths_and_directions():
    """On real motion with per-frame length noise: lengths become steady, directions stay."""
    from posits.models.metrics import root_align
    from posits.realtime.lift import BoneLengthFilter
    from posits.train.mocap import load_motion
    pytest.importorskip("posits.train.mocap")
    motion = root_align(next(c.joints for c in load_motion() if c.name == "cmu/playground")[:300])
    rng = np.random.default_rng(0)
    noisy = root_align(motion + rng.normal(0, 0.02, motion.shape))  # 2 cm jitter per point
    filt = BoneLengthFilter()
    out = np.stack([filt(p.astype(np.float32)) for p in noisy])
    np.testing.assert_allclose(out[0], noisy[0], atol=1e-5)          # the first frame is unchanged
    tree = [(c, p) for c, p, _ in skeleton.KINEMATIC_TREE if c >= 0 and p >= 0]
    before = skeleton.bone_lengths(noisy[100:], tree).std(axis=0)
    after = skeleton.bone_lengths(out[100:], tree).std(axis=0)
    assert (after < 0.2 * before).all()
    vec = lambda x: x[:, [c for c, _ in tree]] - x[:, [p for _, p in tree]]  # noqa: E731
    a, b = vec(out), vec(noisy)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() > 0.999


def test_fps_range_comes_from_the_manifest():
    """The camera rates the LSTM was trained for: its data config's smoother_fps (it is told
    the frame interval); None for the lifter alone."""
    lifter = PoseLifter()
    cfg = manifest.resolve("smoother", None)[1]["data_config"]
    assert lifter.smoother.takes_dt and "dt" not in lifter.smoother.state_names
    assert lifter.fps_range == tuple(cfg["smoother_fps"]) == (15.0, 60.0)
    assert PoseLifter(use_lstm=False).fps_range is None
    # it still lags below 24 fps (measured): the warning's threshold
    assert lifter.lag_fps() == 24.0 and lifter.lags_at(20.0) and not lifter.lags_at(23.976)
    assert not lifter.lags_at(60.0) and not PoseLifter(use_lstm=False).lags_at(10.0)


def test_frame_interval_comes_from_frame_times():
    """The smoother's dt: the time since the previous frame in 30 fps frames, from the frame
    times (a camera that drops frames) or else the source's rate, kept within the intervals
    the LSTM was trained for; a track starts at the source's rate."""
    stage = PoseLifter(fps=15.0)
    assert stage.frame_dt(None) == pytest.approx(2.0)
    assert stage.frame_dt(10.0) == pytest.approx(2.0)              # a track's first frame
    assert stage.frame_dt(10.0 + 1 / 30) == pytest.approx(1.0)
    assert stage.frame_dt(10.0 + 2 / 30) == pytest.approx(1.0)
    assert stage.frame_dt(10.0 + 7 / 30) == pytest.approx(2.0)     # 5 frames dropped: 15 fps at most
    assert stage.frame_dt(10.0 + 7.5 / 30) == pytest.approx(0.5)   # 60 fps at least
    stage.reset()
    assert stage.frame_dt(20.0) == pytest.approx(2.0)
    assert PoseLifter().frame_dt(None) == pytest.approx(1.0)


def test_lstm_follows_a_15_fps_source_closer_when_told_its_rate(walk_kp):
    """The real clip at 15 fps (every other frame): told the rate, the LSTM expects the larger
    frame-to-frame motion and stays closer to the lifter's poses than when it takes the frames
    for 30 fps ones (then it smooths the motion away as jitter, and lags), while still
    steadying them."""
    kp = walk_kp[::2]
    lifted = lift_sequence(kp, (640, 400), fps=15.0, use_lstm=False, bones=False)
    told = lift_sequence(kp, (640, 400), fps=15.0, bones=False)
    untold = lift_sequence(kp, (640, 400), fps=30.0, bones=False)
    gap = lambda p: np.nanmean(np.linalg.norm(p - lifted, axis=-1))  # noqa: E731
    acc = lambda p: np.nanmean(np.linalg.norm(np.diff(p, 2, axis=0), axis=-1))  # noqa: E731
    assert gap(told) < 0.8 * gap(untold)
    assert acc(told) < acc(lifted)


def test_lift_sequence_warns_below_the_lstm_rates(walk_kp, caplog):
    """Below the rate from which the LSTM keeps up (lag_fps), a warning (it lags there); at 30 or 60 fps, or
    without the LSTM, none."""
    import logging
    low = PoseLifter().lag_fps()
    with caplog.at_level(logging.WARNING, logger="posits.realtime.lift"):
        lift_sequence(walk_kp[:20], (640, 400), fps=30.0)
        lift_sequence(walk_kp[:20], (640, 400), fps=60.0)
        lift_sequence(walk_kp[:20], (640, 400), fps=0.5 * low, use_lstm=False)
        assert not caplog.records
        lift_sequence(walk_kp[:20], (640, 400), fps=0.5 * low)
    assert len(caplog.records) == 1 and "lag" in caplog.records[0].getMessage()

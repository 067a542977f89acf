"""The Keras models' structure: the flip-averaged lifter and the streaming filter smoother."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from posits.models.normalize import normalize_2d
from posits.train import nets
from posits.train.dataset import mirror
from posits.train.mocap import load_motion


@pytest.fixture(scope="module")
def kp2d():
    """Normalized 2D of real motion (a side view of the DeepMimic walk): (1, T, 33, 3)."""
    walk = next(c.joints for c in load_motion() if c.name == "deepmimic/walk")[:40]
    xy = walk[..., [2, 1]] * np.array([300.0, -300.0]) + np.array([320.0, 240.0])
    return normalize_2d(np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))[None].astype(np.float32)


def test_flip_averaged_lifter_is_mirror_equivariant(kp2d):
    """Mirroring the 2D mirrors the 3D exactly: no left/right bias is left in the output."""
    lifter = nets.flip_averaged(nets.build_lifter(5, 16, 3, 1, 1, 32, 1, 0.0))
    x = np.stack([kp2d[0, t - 4:t + 1] for t in range(4, kp2d.shape[1])])
    y = lifter.predict(x, verbose=0)
    np.testing.assert_allclose(lifter.predict(mirror(x), verbose=0), mirror(y), atol=1e-5)
    assert [t.name for t in lifter.inputs] == ["keypoints"] and lifter.output_names == ["pose"]


def test_filter_smoother_step_form_equals_sequence_form(kp2d):
    """Stepping the single-step model with its state fed back reproduces the sequence model,
    with a frame interval that changes from frame to frame (a camera dropping frames); a
    track's first output is the lifter's own pose (y starts at it, v at zero)."""
    seq, step = nets.build_smoother(16, None)
    rng = np.random.default_rng(0)
    for layer in (seq.get_layer("rnn").cell.gains,):       # non-trivial gains
        layer.set_weights([0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    pose = (kp2d * 0.5).astype(np.float32)
    dt = rng.uniform(0.5, 2.0, (1, pose.shape[1], 1)).astype(np.float32)
    ref = seq.predict([pose, kp2d, dt], verbose=0)
    np.testing.assert_allclose(ref[:, 0], pose[:, 0], atol=1e-6)
    state = [np.zeros((1, 16), np.float32), np.zeros((1, 16), np.float32), pose[:, 0], np.zeros_like(pose[:, 0])]
    outs = []
    for t in range(pose.shape[1]):
        out, *state = step.predict([pose[:, t], kp2d[:, t], dt[:, t], *state], verbose=0)
        outs.append(out)
    np.testing.assert_allclose(np.stack(outs, axis=1), ref, atol=1e-5)
    assert not np.allclose(ref, pose, atol=1e-3)             # it does filter
    at_30 = seq.predict([pose, kp2d, nets.dt_input(None, 1, pose.shape[1])], verbose=0)
    assert not np.allclose(at_30[:, 2:], ref[:, 2:], atol=1e-4)   # and the frame interval counts


def test_filter_smoother_predicts_the_motion_over_the_frame_interval():
    """With the filter's gains at zero its output is its prediction y + v dt: the velocity is
    per 30 fps frame, so at 15 fps (dt 2) a steady motion is predicted twice as far."""
    seq, step = nets.build_smoother(8, None)
    gains = seq.get_layer("rnn").cell.gains
    w, b = gains.get_weights()
    gains.set_weights([np.zeros_like(w), np.full_like(b, -30.0)])       # sigmoid(-30) ~ 0
    y = np.random.default_rng(1).normal(size=(1, 33, 3)).astype(np.float32)
    v = np.full((1, 33, 3), 0.01, np.float32)
    zeros = np.zeros((1, 8), np.float32)
    for dt in (1.0, 2.0, 0.5):
        out = step.predict([y, y, np.array([[dt]], np.float32), zeros, zeros, y, v], verbose=0)[0]
        np.testing.assert_allclose(out, y + v * dt, atol=1e-6)


def test_pa_mpjpe_loss_matches_the_metric_and_ignores_similarity_transforms():
    """The loss's PA term is models/metrics.pa_mpjpe (mm: the output unit is the metre) on real
    poses; a rotated, scaled, shifted copy of the truth costs nothing in it but does in MPJPE;
    its gradient is finite."""
    from posits.models import metrics
    from posits.models.normalize import normalize_3d
    clips = {c.name: c.joints for c in load_motion()}
    truth = normalize_3d(clips["deepmimic/walk"][:20]).astype(np.float32)
    pred = normalize_3d(clips["deepmimic/run"][:20]).astype(np.float32)
    got = 1000.0 * float(nets.pa_mpjpe_loss(truth, pred))
    assert got == pytest.approx(metrics.pa_mpjpe(pred, truth), rel=1e-3)
    assert got > 20.0
    a, b = np.radians(40.0), np.radians(15.0)
    rot = (np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
           @ np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])).astype(np.float32)
    moved = 0.8 * truth @ rot.T + np.float32(0.1)
    assert 1000.0 * float(nets.pa_mpjpe_loss(truth, moved)) < 0.1        # the 1e-9 under the sqrt: 0.03
    assert 1000.0 * float(nets.mpjpe_loss(truth, moved)) > 50.0
    import tensorflow as tf
    p = tf.Variable(pred)
    with tf.GradientTape() as tape:
        value = nets.lifter_loss(1.0)(truth, p)
    grad = tape.gradient(value, p).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    assert nets.lifter_loss(0.0) is nets.mpjpe_loss

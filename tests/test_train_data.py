"""Training data pieces on the real vendored motion: augmentation, cameras, noise, windows, metrics."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from posits.models import metrics, skeleton
from posits.train import dataset, project
from posits.train.fit import gather_windows
from posits.train.mocap import load_motion


@pytest.fixture(scope="module")
def walk():
    return next(c.joints for c in load_motion() if c.name == "deepmimic/walk")


def test_mirror_is_an_involution_and_keeps_bones(walk):
    m = dataset.mirror(walk)
    np.testing.assert_allclose(dataset.mirror(m), walk, atol=1e-6)
    # left and right limbs trade places: the mirrored left thigh is the original right thigh
    lt = np.linalg.norm(m[:, 25] - m[:, 23], axis=-1)
    rt = np.linalg.norm(walk[:, 26] - walk[:, 24], axis=-1)
    np.testing.assert_allclose(lt, rt, atol=1e-6)


def test_bone_scaling_changes_lengths_not_directions(walk):
    factors = {s: 1.0 for s in dataset.SEGMENTS} | {"shin": 1.2}
    scaled = dataset.scale_bones(walk, factors, overall=0.9)
    shin = lambda p: p[:, 27] - p[:, 25]  # noqa: E731
    np.testing.assert_allclose(np.linalg.norm(shin(scaled), axis=-1),
                               1.08 * np.linalg.norm(shin(walk), axis=-1), rtol=1e-5)
    cos = (shin(scaled) * shin(walk)).sum(-1) / np.linalg.norm(shin(scaled), axis=-1) / np.linalg.norm(shin(walk), axis=-1)
    assert cos.min() > 0.9999
    np.testing.assert_allclose(skeleton.hip_center(scaled), skeleton.hip_center(walk), atol=1e-6)


def test_mix_limbs_keeps_the_torso_and_takes_whole_limbs(walk):
    """Mixed motion keeps the receiver's torso and head; every limb is either its own or the
    donor's (same shape relative to the shoulder/hip, in the torso frame)."""
    donor = next(c.joints for c in load_motion() if c.name == "deepmimic/run")[: len(walk)]
    walk = walk[: len(donor)]
    rng = np.random.default_rng(3)
    taken = 0
    for _ in range(8):
        mixed = dataset.mix_limbs(walk, donor, rng)
        torso = [0, 7, 8, 11, 12, 23, 24]
        np.testing.assert_allclose(mixed[:, torso], walk[:, torso], atol=1e-6)
        for base, idx in dataset.LIMBS:
            rel = mixed[:, list(idx)] - mixed[:, base:base + 1]
            own = np.allclose(mixed[:, list(idx)], walk[:, list(idx)], atol=1e-6)
            lengths = np.linalg.norm(rel, axis=-1)
            donor_lengths = np.linalg.norm(donor[:, list(idx)] - donor[:, base:base + 1], axis=-1)
            assert own or np.allclose(lengths, donor_lengths, atol=1e-5)
            taken += not own
    assert taken > 0


def test_turn_joints_makes_new_poses_with_the_same_body(walk):
    """Turned joints: every bone keeps its length (the hands, feet and face move as rigid
    parts; the hip-to-shoulder sides of the torso bend and twist with the spine), elbows and knees stay within 0-150 degrees and bend in their own plane, the hips
    stay where they were, and the motion stays as smooth as it was."""
    rng = np.random.default_rng(5)
    turned = dataset.turn_joints(walk, 20.0, rng)
    bones = np.array([b for b in skeleton.BONES if b not in ((23, 11), (24, 12))])

    def lengths(j):
        return np.linalg.norm(j[:, bones[:, 1]] - j[:, bones[:, 0]], axis=-1)

    np.testing.assert_allclose(lengths(turned), lengths(walk), atol=1e-5)
    np.testing.assert_allclose(turned[:, 23:25], walk[:, 23:25], atol=1e-6)
    moved = np.linalg.norm(turned - walk, axis=-1)                # (T, 33)
    assert np.median(moved[:, [15, 16, 27, 28]]) > 0.03          # new poses, not jitter
    for a, b, c in ((11, 13, 15), (12, 14, 16), (23, 25, 27), (24, 26, 28)):
        u, v = turned[:, b] - turned[:, a], turned[:, c] - turned[:, b]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() <= 150.0 + 1e-3
    accel = lambda j: np.abs(np.diff(j, 2, axis=0)).max()
    assert accel(turned) < 2.0 * accel(walk)
    np.testing.assert_allclose(dataset.turn_joints(walk, 0.0, rng), walk, atol=1e-6)


def test_camera_sees_person_upright_and_in_front(walk):
    rng = np.random.default_rng(3)
    for _ in range(20):
        cam = project.random_camera(walk, rng)
        assert abs(np.linalg.det(cam.rotation) - 1.0) < 1e-9
        c3d, px = project.view(walk, cam)
        assert (c3d[..., 2] > 0.5).all()                         # in front of the camera
        head, ankles = px[:, 0, 1], px[:, 27:29, 1].mean(1)
        assert (head < ankles).mean() > 0.95                     # upright: head above feet
        w, h = cam.size
        centre = px[:, 23:25].mean(1)
        assert ((centre[:, 0] > 0) & (centre[:, 0] < w) & (centre[:, 1] > 0) & (centre[:, 1] < h)).all()


def test_close_camera_frames_head_and_upper_body(walk):
    """A webcam close-up: head and shoulders in the image, ankles below it, the person facing
    the camera (left shoulder on the image's right, mostly), in front of it."""
    rng = np.random.default_rng(5)
    still = dataset.in_place(walk)
    root = skeleton.hip_center(still)
    np.testing.assert_allclose(root[:, [0, 2]], root[:1, [0, 2]].repeat(len(root), 0), atol=1e-6)
    facing = []
    for _ in range(20):
        cam = project.close_camera(still, rng)
        c3d, px = project.view(still, cam)
        w, h = cam.size
        inside = (px[..., 0] >= 0) & (px[..., 0] <= w) & (px[..., 1] >= 0) & (px[..., 1] <= h)
        assert (np.linalg.norm(c3d, axis=-1) > 0.35).all()             # nothing at the lens
        assert (c3d[..., 2][inside] > 0.3).all()                        # what it sees, in front
        assert inside[:, 0].mean() > 0.9 and inside[:, 11:13].mean() > 0.9
        assert inside[:, 27:29].mean() < 0.1
        facing.append((px[:, skeleton.INDEX["left_shoulder"], 0] > px[:, skeleton.INDEX["right_shoulder"], 0]).mean())
    assert np.mean(facing) > 0.8


def test_landmarks_outside_the_image_are_guessed_with_low_visibility(walk):
    rng = np.random.default_rng(2)
    still = dataset.in_place(walk)
    cam = project.close_camera(still, rng)
    _, px = project.view(still, cam)
    noisy = project.corrupt(px, cam.size, rng)
    w, h = cam.size
    outside = (px[..., 0] < 0) | (px[..., 0] > w) | (px[..., 1] < 0) | (px[..., 1] > h)
    assert outside.any() and (~outside).any()
    err = np.linalg.norm(noisy[..., :2] - px, axis=-1) / project.body_scale_px(px)[:, None]
    assert np.median(noisy[..., 2][outside]) < 0.1 < 0.8 < np.median(noisy[..., 2][~outside])
    assert np.median(err[outside]) > 3 * np.median(err[~outside])


def test_projection_keeps_left_on_the_left_for_a_frontal_camera(walk):
    """A camera in front of the walker sees the subject's left side on the image's right."""
    facing = walk[-1, 23:25].mean(0) - walk[0, 23:25].mean(0)
    facing[1] = 0
    facing /= np.linalg.norm(facing)
    root = walk[:, 23:25].mean((0, 1))
    pos = root + 4.0 * facing
    pos[1] = 1.2
    cam = project.Camera(project.look_at(pos, root), pos, 800.0, (640, 480))
    _, px = project.view(walk, cam)
    assert (px[:, skeleton.INDEX["left_shoulder"], 0] > px[:, skeleton.INDEX["right_shoulder"], 0]).mean() > 0.9


def test_detector_noise_is_realistic(walk):
    rng = np.random.default_rng(0)
    cam = project.random_camera(walk, rng)
    _, px = project.view(walk, cam)
    noisy = project.corrupt(px, cam.size, rng)
    assert noisy.shape == (len(walk), 33, 3)
    err = np.linalg.norm(noisy[..., :2] - px, axis=-1)
    scale = project.body_scale_px(px)[:, None]
    assert 0.001 < np.median(err / scale) < 0.05                 # small jitter relative to body size
    assert ((noisy[..., 2] >= 0) & (noisy[..., 2] <= 1)).all()


def test_windows_match_live_padding():
    """Training windows are edge-padded at a track start exactly like the live Lifter."""
    x = np.arange(2 * 6 * 33 * 3, dtype=np.float32).reshape(2, 6, 33, 3)
    w = dataset.windows(x, 4)
    assert w.shape == (2, 6, 4, 33, 3)
    np.testing.assert_array_equal(w[:, 0], np.repeat(x[:, :1], 4, axis=1))
    np.testing.assert_array_equal(w[:, 5], x[:, 2:6])
    g = gather_windows(x, np.array([1, 0]), np.array([1, 5]), 4)
    np.testing.assert_array_equal(g[0], w[1, 1])
    np.testing.assert_array_equal(g[1], w[0, 5])


def test_make_sequences_shapes_and_normalization(walk):
    cfg = dataset.DataConfig(seq_len=16)
    x, y = dataset.make_sequences([walk], 5, cfg, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 16, 33, 3)
    np.testing.assert_allclose(skeleton.hip_center(y), 0.0, atol=1e-5)
    assert np.abs(x[..., :2]).max() < 10 and np.isfinite(x).all()


def test_metrics_on_real_motion(walk):
    rng = np.random.default_rng(0)
    assert metrics.mpjpe(walk, walk) == 0.0
    th = 0.4
    rot = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
    moved = 1.1 * walk @ rot.T + 3.0
    assert metrics.pa_mpjpe(moved, walk) < 1e-3                   # similarity transform: no shape error
    assert metrics.mpjpe(moved, walk) > 50
    noisy = walk + rng.normal(0, 0.01, walk.shape)
    assert 5 < metrics.mpjpe(noisy, walk) < 25
    assert metrics.accel_error(noisy, walk) > metrics.accel_error(walk + 0.01, walk)
    with pytest.raises(ValueError):
        metrics.mpjpe(walk[:, :12], walk)

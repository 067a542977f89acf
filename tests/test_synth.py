"""Tests of the synthetic motion generator (train/synth.py)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from posits.models.skeleton import INDEX, LIMB_BONES, NUM_LANDMARKS, bone_lengths
from posits.train import synth
from posits.train.dataset import _torso_frame

CLIPS = synth.synth_clips(8, 120, seed=3)


def _flexion(j: np.ndarray, a: str, b: str, c: str) -> np.ndarray:
    """Flexion (deg) at landmark b of the chain a-b-c: 180 minus the inner angle. -> (T,)"""
    u = j[:, INDEX[a]] - j[:, INDEX[b]]
    v = j[:, INDEX[c]] - j[:, INDEX[b]]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return 180.0 - np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_shapes_and_metadata():
    """n clips of (frames, 33, 3) float32, finite, 30 fps."""
    assert len(CLIPS) == 8
    for c in CLIPS:
        assert c.joints.shape == (120, NUM_LANDMARKS, 3) and c.joints.dtype == np.float32
        assert np.isfinite(c.joints).all() and c.fps == 30.0 and c.name.startswith("synth/")


def test_deterministic_with_seed():
    """Same seed, same clips; another seed, other clips."""
    again = synth.synth_clips(8, 120, seed=3)
    assert all(np.array_equal(a.joints, b.joints) for a, b in zip(CLIPS, again))
    other = synth.synth_clips(1, 120, seed=4)
    assert not np.allclose(other[0].joints, CLIPS[0].joints)


@pytest.mark.parametrize("seed", range(5))
def test_joint_limits(seed):
    """Every dof stays inside LIMITS; knee and elbow flexion measured on the landmarks agree."""
    rng = np.random.default_rng(seed)
    m = synth.synth_motion(rng, 150)
    for name, values in m.angles.items():
        dof = name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name
        lo, hi = synth.LIMITS[dof]
        assert values.min() >= lo - 1e-6 and values.max() <= hi + 1e-6, name
    for side in ("left", "right"):
        knee = _flexion(m.joints, f"{side}_ankle", f"{side}_knee", f"{side}_hip")
        elbow = _flexion(m.joints, f"{side}_wrist", f"{side}_elbow", f"{side}_shoulder")
        assert knee.max() < synth.LIMITS["knee_flex"][1] + 15  # hip landmark is off the femur head
        np.testing.assert_allclose(elbow, m.angles[f"{side}_elbow_flex"], atol=0.1)


def test_smooth():
    """Bounded velocity and acceleration (within what the real mocap clips show)."""
    j = np.stack([c.joints for c in CLIPS]).astype(np.float64)
    vel = np.linalg.norm(np.diff(j, axis=1), axis=-1)
    acc = np.linalg.norm(j[:, 2:] - 2 * j[:, 1:-1] + j[:, :-2], axis=-1)
    assert vel.max() < 0.5 and acc.max() < 0.25          # m/frame, m/frame^2 at 30 fps
    assert np.percentile(acc, 99) < 0.08


def test_constant_bones_and_upright():
    """Limb lengths constant per clip; head above hips; feet near the ground; left on the left."""
    for c in CLIPS:
        j = c.joints.astype(np.float64)
        assert bone_lengths(j).std(axis=0).max() < 0.01
        assert np.all(j[:, INDEX["nose"], 1] > 0.5 * (j[:, 23, 1] + j[:, 24, 1]))
        assert np.all(np.abs(j[:, [29, 30, 31, 32], 1].min(axis=1)) < 0.05)
        # facing f from the pelvis: left = u x f, so the left hip is on that side by construction
        ears = 0.5 * (j[:, INDEX["left_ear"]] + j[:, INDEX["right_ear"]])
        f = j[:, INDEX["nose"]] - ears
        f[:, 1] = 0
        left = np.cross([0.0, 1.0, 0.0], f)
        assert np.mean(np.sum((j[:, INDEX["left_ear"]] - j[:, INDEX["right_ear"]]) * left, 1) > 0) == 1.0


def test_bodies_vary():
    """Different clips have different sizes."""
    shins = [bone_lengths(c.joints[:1], LIMB_BONES[5:6])[0, 0] for c in CLIPS]   # (25, 27)
    assert np.ptp(shins) > 0.02


def test_fast():
    """100 clips x 300 frames in a few seconds."""
    t0 = time.perf_counter()
    synth.synth_clips(100, 300, seed=0)
    assert time.perf_counter() - t0 < 5.0


def _arm_abduction(j: np.ndarray) -> np.ndarray:
    """Geometric upper-arm abduction (deg) in the torso frame, both arms -> (2T,):
    0 hanging straight down beside the torso, 90 horizontal out to the side."""
    right, up, _ = np.moveaxis(_torso_frame(j), 1, 0)
    out = []
    for shoulder, elbow, outward in (("left_shoulder", "left_elbow", -right), ("right_shoulder", "right_elbow", right)):
        u = j[:, INDEX[elbow]] - j[:, INDEX[shoulder]]
        out.append(np.degrees(np.arctan2(np.sum(u * outward, -1), -np.sum(u * up, -1))))
    return np.concatenate(out)


def test_arms_cover_relaxed_and_raised_poses():
    """The prior covers arms hanging at the sides (the commonest pose in front of a webcam: under
    10 degrees of abduction; the old prior's 10th percentile was 14 degrees) as well as raised arms."""
    abd = np.concatenate([_arm_abduction(c.joints.astype(np.float64)) for c in synth.synth_clips(40, 150, seed=0)])
    assert np.mean(abd < 10.0) > 0.15
    assert np.mean(abd > 45.0) > 0.08


def test_seated_clips_sit():
    """Seated clips (the commonest pose in front of a webcam) have hips and knees bent past 60
    degrees, measured on the landmarks, in nearly every frame, the hips about a shin length above
    the floor and the feet on it; standing clips never sit, and ``seated`` sets the share."""
    seated = synth.synth_clips(12, 150, seed=1, seated=1.0)
    standing = synth.synth_clips(12, 150, seed=1, seated=0.0)
    for clips, sits in ((seated, True), (standing, False)):
        j = np.stack([c.joints for c in clips]).reshape(-1, NUM_LANDMARKS, 3).astype(np.float64)
        bent = np.ones(len(j), bool)
        for side in ("left", "right"):
            hip = _flexion(j, f"{side}_knee", f"{side}_hip", f"{side}_shoulder")    # trunk-thigh
            knee = _flexion(j, f"{side}_ankle", f"{side}_knee", f"{side}_hip")
            bent &= (hip > 60) & (knee > 60)
        leg = np.linalg.norm(j[:, INDEX["left_hip"]] - j[:, INDEX["left_knee"]], axis=-1) \
            + np.linalg.norm(j[:, INDEX["left_knee"]] - j[:, INDEX["left_ankle"]], axis=-1)
        hip_height = j[:, [INDEX["left_hip"], INDEX["right_hip"]], 1].mean(axis=1) / leg
        if sits:
            assert bent.mean() > 0.9, bent.mean()
            assert 0.45 < np.median(hip_height) < 0.8
        else:
            assert bent.mean() < 0.02, bent.mean()
            assert np.median(hip_height) > 0.85
        lowest = np.abs(j[:, 27:33, 1].min(axis=1))                   # the lowest foot point
        assert np.percentile(lowest, 99) < 0.02                         # on the floor (smoothed)
    some = synth.synth_clips(60, 30, seed=2, seated=0.3)
    share = np.mean([np.median(c.joints[:, [23, 24], 1].mean(axis=1)) < 0.6 for c in some])
    assert 0.15 < share < 0.45

"""Tests of the vendored real motion (train/data/motion.npz) and of the mocap helpers."""
from __future__ import annotations

import numpy as np
import pytest

from posits.models.skeleton import INDEX, LIMB_BONES, NUM_LANDMARKS, bone_lengths
from posits.train import mocap

UP = np.array([0.0, 1.0, 0.0])
THIGHS = {(23, 25), (24, 26)}
FACE = [INDEX[n] for n in ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
                           "right_eye", "right_eye_outer", "left_ear", "right_ear", "mouth_left",
                           "mouth_right")]
HANDS = {"left_wrist": ("left_pinky", "left_index", "left_thumb"),
         "right_wrist": ("right_pinky", "right_index", "right_thumb")}
CLIPS = mocap.load_motion()
BY_NAME = {c.name: c for c in CLIPS}


def _facing_from_travel(j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal unit direction of travel of the hip midpoint (T, 3) and a mask of moving frames."""
    hips = 0.5 * (j[:, 23] + j[:, 24]).astype(np.float64)
    v = np.gradient(hips, axis=0)
    v[:, 1] = 0.0
    speed = np.linalg.norm(v, axis=1)
    return v / np.maximum(speed, 1e-9)[:, None], speed * 30.0 > 0.5


def test_clip_list():
    """All 15 DeepMimic clips and the CMU clip are there, at 30 fps, with their licences."""
    names = [c.name for c in CLIPS]
    assert len(names) == 16 and names[-1] == "cmu/playground"
    assert {"deepmimic/walk", "deepmimic/run", "deepmimic/jump"} <= set(names)
    assert all(c.fps == 30.0 and c.licence and c.source for c in CLIPS)
    assert sum(len(c.joints) for c in CLIPS) > 1500


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: c.name)
def test_clip_geometry(clip):
    """Finite (T, 33, 3); rigid limbs; face near the head; hand points near the wrist; ground ~0."""
    j = clip.joints
    assert j.dtype == np.float32 and j.ndim == 3 and j.shape[1:] == (NUM_LANDMARKS, 3)
    assert len(j) >= 20 and np.isfinite(j).all()
    std = bone_lengths(j).std(axis=0)
    for bone, s in zip(LIMB_BONES, std):
        # MediaPipe's hip landmark is not the femur head (offset in the pelvis frame), so the
        # hip-to-knee distance changes a little with hip rotation; every other limb is rigid.
        assert s < (0.015 if bone in THIGHS else 0.01), (bone, s)
    ears = 0.5 * (j[:, INDEX["left_ear"]] + j[:, INDEX["right_ear"]])
    assert np.linalg.norm(j[:, FACE] - ears[:, None], axis=-1).max() < 0.16
    for wrist, points in HANDS.items():
        d = j[:, [INDEX[p] for p in points]] - j[:, INDEX[wrist], None]
        assert np.linalg.norm(d, axis=-1).max() < 0.2
    lowest = j[:, :, 1].min(axis=1)
    assert -0.12 < np.percentile(lowest, 5) < 0.1       # ground near y = 0


@pytest.mark.parametrize("name", ["deepmimic/walk", "deepmimic/run", "deepmimic/jump",
                                  "deepmimic/punch", "cmu/playground"])
def test_upright(name):
    """Upright on average: head above hips above ankles."""
    j = BY_NAME[name].joints
    head, hips = j[:, INDEX["nose"], 1], 0.5 * (j[:, 23, 1] + j[:, 24, 1])
    ankles = 0.5 * (j[:, 27, 1] + j[:, 28, 1])
    assert head.mean() > hips.mean() + 0.4 > ankles.mean() + 0.8


@pytest.mark.parametrize("name", ["deepmimic/walk", "deepmimic/run", "cmu/playground"])
def test_left_is_left(name):
    """With f the direction of travel and u up, the subject's left is u x f.

    In a right-handed y-up frame facing +x (f = x), u x f = y x x = -z, which is where the
    DeepMimic humanoid's left leg is. The nose, and the toes of a foot on the ground, point along f.
    """
    j = BY_NAME[name].joints.astype(np.float64)
    f, moving = _facing_from_travel(j)
    assert moving.mean() > 0.3
    left = np.cross(UP, f)
    for a, b in ((INDEX["left_hip"], INDEX["right_hip"]), (INDEX["left_shoulder"], INDEX["right_shoulder"]),
                 (INDEX["left_ear"], INDEX["right_ear"]), (INDEX["left_eye"], INDEX["right_eye"])):
        side = np.sum((j[:, a] - j[:, b]) * left, axis=1)[moving]
        assert np.mean(side > 0) > 0.95, (a, b)
    ears = 0.5 * (j[:, INDEX["left_ear"]] + j[:, INDEX["right_ear"]])
    assert np.mean(np.sum((j[:, INDEX["nose"]] - ears) * f, 1)[moving] > 0) > 0.95
    toes = j[:, INDEX["left_foot_index"]] - j[:, INDEX["left_heel"]]
    stance = moving & (j[:, INDEX["left_heel"], 1] < 0.1)    # in the air the foot may point down
    assert stance.any() and np.mean(np.sum(toes * f, 1)[stance] > 0) > 0.95


def test_hands_thumb_forward_when_arms_hang():
    """Arms hanging (wrist well below elbow) in the walk: index knuckle ahead of the pinky."""
    j = BY_NAME["deepmimic/walk"].joints.astype(np.float64)
    f, _ = _facing_from_travel(j)
    for side in ("left", "right"):
        down = j[:, INDEX[f"{side}_wrist"], 1] < j[:, INDEX[f"{side}_elbow"], 1] - 0.2
        d = j[:, INDEX[f"{side}_index"]] - j[:, INDEX[f"{side}_pinky"]]
        assert down.any() and np.all(np.sum(d * f, 1)[down] > 0)


def test_quaternion_helpers():
    """quat <-> matrix round trip, slerp end points and mid point, axis rotations."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    r = mocap.quat_to_matrix(q)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(mocap.matrix_to_quat(r), q, atol=1e-9)
    z = np.array([[np.cos(0.3), 0, 0, np.sin(0.3)]])
    ident = np.array([[1.0, 0, 0, 0]])
    np.testing.assert_allclose(mocap.quat_slerp(ident, z, np.array([0.5]))[0],
                               [np.cos(0.15), 0, 0, np.sin(0.15)], atol=1e-12)
    np.testing.assert_allclose(mocap.quat_to_matrix(z)[0], mocap.axis_rotation("z", 0.6), atol=1e-12)


def test_place_landmarks_neutral_pose():
    """Identity frames (facing +x): left points on -z, face ahead of the head, feet on the ground."""
    centres = {n: np.zeros((1, 3)) for n in mocap.BODY_CENTRES}
    centres["head"] = np.array([[0.0, 1.6, 0.0]])
    centres["left_hip"] = np.array([[0.0, 0.9, -0.085]])
    centres["right_hip"] = np.array([[0.0, 0.9, 0.085]])
    for side, z in (("left", -1), ("right", 1)):
        centres[f"{side}_wrist"] = np.array([[0.0, 0.8, 0.2 * z]])
        centres[f"{side}_ankle"] = np.array([[0.0, 0.07, 0.1 * z]])
    frames = {n: np.eye(3)[None] for n in mocap.SEGMENT_FRAMES}
    j = mocap.place_landmarks(centres, frames)[0]
    assert j[INDEX["left_ear"], 2] < 0 < j[INDEX["right_ear"], 2]
    assert j[INDEX["left_hip"], 2] < -0.085 and j[INDEX["right_hip"], 2] > 0.085
    assert j[INDEX["nose"], 0] > 0.05 and j[INDEX["left_index"], 1] < 0.8
    assert abs(j[INDEX["left_heel"], 1]) < 0.05 and j[INDEX["left_foot_index"], 0] > 0.1


def test_save_load_round_trip(tmp_path):
    """save_motion -> load_motion keeps names and joints (to the stored precision), bytes stable."""
    clips = CLIPS[:3]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    mocap.save_motion(clips, a)
    mocap.save_motion(clips, b)
    assert a.read_bytes() == b.read_bytes()
    back = mocap.load_motion(a)
    assert [c.name for c in back] == [c.name for c in clips]
    for x, y in zip(back, clips):
        np.testing.assert_allclose(x.joints, y.joints, atol=1e-4)


def test_vendored_file_is_small():
    """The shipped npz stays well under 1 MB."""
    assert mocap.DEFAULT_MOTION_PATH.stat().st_size < 800_000

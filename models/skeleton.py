"""The 33 MediaPipe pose landmarks: names, indices, bones and the left/right mirror map.

This module is the single source of skeleton topology for the whole project: the 2D overlay,
the 3D view, training augmentation (mirroring), retargeting and the metrics all import it.
Numpy only.
"""
from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 33

#: Landmark names in MediaPipe PoseLandmarker order (index == position in this tuple).
LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner", "left_eye", "left_eye_outer",
    "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear",
    "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_pinky", "right_pinky",
    "left_index", "right_index",
    "left_thumb", "right_thumb",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
    "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
assert len(LANDMARK_NAMES) == NUM_LANDMARKS

#: name -> index
INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}

#: Bones as (parent, child) index pairs: the MediaPipe pose connections, oriented away from the
#: hips. Used for drawing (2D overlay, 3D view) and for bone lengths.
BONES: tuple[tuple[int, int], ...] = (
    # face
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    # torso
    (11, 12), (23, 11), (24, 12), (23, 24),
    # left arm and hand
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    # right arm and hand
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    # left leg and foot
    (23, 25), (25, 27), (27, 29), (29, 31), (27, 31),
    # right leg and foot
    (24, 26), (26, 28), (28, 30), (30, 32), (28, 32),
)

#: Limb bones whose length is fixed on a real body: used to judge 3D stability.
LIMB_BONES: tuple[tuple[int, int], ...] = (
    (11, 13), (13, 15), (12, 14), (14, 16),   # upper arms, forearms
    (23, 25), (25, 27), (24, 26), (26, 28),   # thighs, shins
    (11, 12), (23, 24),                       # shoulder width, hip width
)

#: The 12 main body joints (shoulders, elbows, wrists, hips, knees, ankles).
BODY_JOINTS: tuple[int, ...] = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

#: Kinematic tree over the 33 landmarks, rooted at the hip midpoint: (child, parent, segment)
#: in parent-before-child order. Two virtual points: HIP_MID (-1) and SHOULDER_MID (-2).
#: Used for bone-length scaling in training and bone-length constraints at run time.
HIP_MID, SHOULDER_MID = -1, -2
KINEMATIC_TREE: tuple[tuple[int, int, str], ...] = (
    (23, -1, "hip"), (24, -1, "hip"), (-2, -1, "torso"),
    (11, -2, "shoulder"), (12, -2, "shoulder"),
    *[(j, -2, "head") for j in range(11)],
    (13, 11, "upper_arm"), (14, 12, "upper_arm"), (15, 13, "forearm"), (16, 14, "forearm"),
    *[(j, 15, "hand") for j in (17, 19, 21)], *[(j, 16, "hand") for j in (18, 20, 22)],
    (25, 23, "thigh"), (26, 24, "thigh"), (27, 25, "shin"), (28, 26, "shin"),
    *[(j, 27, "foot") for j in (29, 31)], *[(j, 28, "foot") for j in (30, 32)],
)

LEFT_HIP, RIGHT_HIP = INDEX["left_hip"], INDEX["right_hip"]
LEFT_SHOULDER, RIGHT_SHOULDER = INDEX["left_shoulder"], INDEX["right_shoulder"]


def _side(name: str) -> str:
    if name.startswith("left_") or name == "mouth_left":
        return "left"
    if name.startswith("right_") or name == "mouth_right":
        return "right"
    return "center"


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


#: SIDE[i] is "left", "right" or "center" (the subject's own left/right, as MediaPipe names it).
SIDE: tuple[str, ...] = tuple(_side(n) for n in LANDMARK_NAMES)
LEFT: tuple[int, ...] = tuple(i for i, s in enumerate(SIDE) if s == "left")
RIGHT: tuple[int, ...] = tuple(i for i, s in enumerate(SIDE) if s == "right")

#: MIRROR[i] is the index of the landmark that i becomes when the body is mirrored left/right.
MIRROR: np.ndarray = np.array([INDEX[_mirror_name(n)] for n in LANDMARK_NAMES], dtype=np.int64)


def bone_lengths(points: np.ndarray, bones=LIMB_BONES) -> np.ndarray:
    """Lengths of `bones` for points of shape (..., 33, D); returns (..., len(bones))."""
    points = np.asarray(points)
    if points.shape[-2] != NUM_LANDMARKS:
        raise ValueError(f"expected (..., {NUM_LANDMARKS}, D) points, got {points.shape}")
    idx = np.asarray(bones)
    return np.linalg.norm(points[..., idx[:, 1], :] - points[..., idx[:, 0], :], axis=-1)


def hip_center(points: np.ndarray) -> np.ndarray:
    """Midpoint of the two hip landmarks for points (..., 33, D); returns (..., D)."""
    points = np.asarray(points)
    return 0.5 * (points[..., LEFT_HIP, :] + points[..., RIGHT_HIP, :])

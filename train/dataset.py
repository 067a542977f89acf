"""Training data: motion clips -> augmented 3D sequences -> virtual cameras -> noisy 2D.

A *sample sequence* is L consecutive frames of one (augmented) clip seen by one camera:
    x2d (L, 33, 3)  detector-like 2D, normalized (models/normalize.normalize_2d)
    y3d (L, 33, 3)  root-relative 3D in camera axes, metres (normalize_3d)
The lifter learns from windows of x2d ending at each frame; the LSTM from whole sequences.
Splits are by clip: no frame of a validation or test clip is ever used for training.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from posits.models.normalize import normalize_2d, normalize_3d
from posits.models.skeleton import KINEMATIC_TREE, MIRROR, NUM_LANDMARKS
from . import project

log = logging.getLogger(__name__)

# Clips held out from training (whole clips). Test: real motion from two sources that the
# models never see (the CMU clip is a different subject, studio and skeleton from DeepMimic).
TEST_CLIPS = ("cmu/playground", "deepmimic/dance_b", "deepmimic/spinkick", "deepmimic/jump")
VAL_CLIPS = ("deepmimic/punch", "deepmimic/kick")
#: Seed offset of the held-out synthetic seated clips (training synthesizes with ``cfg.seed``).
SEATED_TEST_SEED = 10_000
#: Bumped when the way data is made changes (part of the cache key).
DATA_VERSION = 9

SEGMENTS = ("hip", "torso", "shoulder", "head", "upper_arm", "forearm", "hand", "thigh", "shin", "foot")
ARM = (13, 15, 17, 19, 21)      # left arm below the shoulder (mirror for the right)
LEG = (25, 27, 29, 31)          # left leg below the hip


@dataclass(frozen=True)
class DataConfig:
    """How training sequences are made (recorded in the manifest)."""

    seq_len: int = 96                 # frames per sample sequence (30 fps)
    real_sequences: int = 12000       # sample sequences cut from real training clips
    synth_sequences: int = 12000      # sample sequences from synthetic motion (6000 + 6000
                                      # before run full22: README, Training data)
    synth_clips: int = 400            # synthetic clips generated (300 frames each)
    synth_seated: float = 0.2         # fraction of the synthetic clips that sit (synth.SEATED)
    val_sequences: int = 400
    test_cameras: int = 16            # virtual cameras per test clip (fewer: +-10 mm MPJPE by sample)
    mirror: float = 0.5               # probability of a left/right mirrored sequence
    bone_scale: float = 0.07          # std of per-segment length factors
    body_scale: tuple = (0.85, 1.15)  # overall body size factor
    speed: tuple = (0.7, 1.4)         # playback speed factor
    smoother_fps: tuple | None = (15.0, 60.0)  # (lo, hi) camera rates the LSTM learns: each of its
                                      # sequences is the motion (tempo: ``speed``) seen at a rate
                                      # drawn log-uniformly in lo-hi, the frame interval given to
                                      # the LSTM; None: the lifter's sequences, all at 30 fps
    limb_mix: float = 0.5             # probability of taking limbs from another clip (mix_limbs)
    joint_turn: float = 10.0          # std (degrees) of the joint turns given to the real clips'
                                      # sequences (turn_joints); 0: none (before run full24)
    close_up: float = 0.3             # probability of a webcam close-up (project.close_camera)
    test_close_cameras: int = 4       # close-up cameras per test clip (reported separately)
    test_seated_clips: int = 8        # held-out synthetic seated clips (other seed), 2 whole-body
                                      # and 2 close-up views each (reported separately)
    test_low_fps_cameras: int = 8     # cameras per test clip seeing it at 15 fps (reported separately)
    seed: int = 0
    noise: dict = field(default_factory=lambda: asdict(project.NoiseConfig()))

    def key(self) -> str:
        blob = json.dumps({"version": DATA_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


# --- 3D augmentation (world frame, y up) -------------------------------------------------

def mirror(joints: np.ndarray) -> np.ndarray:
    """Mirror (..., 33, 3) points left/right: reflect x and swap the left/right labels (3D
    motion, or normalized 2D x, y, visibility: x is centred on the hips there too)."""
    out = joints[..., MIRROR, :].copy()
    out[..., 0] *= -1.0
    return out


def scale_bones(joints: np.ndarray, factors: dict[str, float], overall: float) -> np.ndarray:
    """Rescale every segment of (T, 33, 3) motion by ``factors[segment] * overall``.

    Bones are scaled as vectors from their parent, in tree order, so the pose (directions)
    is kept and feet stay attached to legs. The hip midpoint stays where it was.
    """
    root = joints[:, 23:25].mean(axis=1)
    shoulders = joints[:, 11:13].mean(axis=1)
    src = {-1: root, -2: shoulders, **{j: joints[:, j] for j in range(NUM_LANDMARKS)}}
    dst = {-1: root}
    for child, parent, seg in KINEMATIC_TREE:
        dst[child] = dst[parent] + (src[child] - src[parent]) * factors[seg] * overall
    return np.stack([dst[j] for j in range(NUM_LANDMARKS)], axis=1)


def resample(joints: np.ndarray, speed: float) -> np.ndarray:
    """Play (T, 33, 3) motion ``speed`` times faster (linear interpolation)."""
    T = joints.shape[0]
    t = np.arange(0.0, T - 1, speed)
    i = np.floor(t).astype(int)
    w = (t - i)[:, None, None]
    return (1 - w) * joints[i] + w * joints[np.minimum(i + 1, T - 1)]


def _torso_frame(joints: np.ndarray) -> np.ndarray:
    """(T, 33, 3) -> (T, 3, 3) rows: body right (hip axis), up (hip->shoulder), forward."""
    right = joints[:, 24] - joints[:, 23]
    up = joints[:, 11:13].mean(1) - joints[:, 23:25].mean(1)
    fwd = np.cross(right, up)
    fwd /= np.linalg.norm(fwd, axis=-1, keepdims=True) + 1e-9
    up /= np.linalg.norm(up, axis=-1, keepdims=True) + 1e-9
    right = np.cross(up, fwd)
    return np.stack([right, up, fwd], axis=1)


LIMBS = ((11, ARM), (12, tuple(int(MIRROR[j]) for j in ARM)),     # left arm, right arm
         (23, LEG), (24, tuple(int(MIRROR[j]) for j in LEG)))     # left leg, right leg


def mix_limbs(joints: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give (T, 33, 3) motion some limbs of ``donor`` (same T), in the torso frame.

    A random non-empty subset of the four limbs is taken over, each independently, so arms
    and legs meet in combinations no clip has (one arm raised while the other swings, the
    legs of a kick under the arms of a walk). Each donor limb is taken relative to its
    shoulder/hip, rotated from the donor's torso frame into the receiver's, and re-attached;
    limb lengths follow the donor (bone scaling runs afterwards anyway).
    """
    out = joints.copy()
    rf, df = _torso_frame(joints), _torso_frame(donor)
    rot = np.einsum("tji,tjk->tik", rf, df)               # donor frame -> receiver frame
    take = rng.random(len(LIMBS)) < 0.5
    if not take.any():
        take[rng.integers(len(LIMBS))] = True
    for (b, idx), t in zip(LIMBS, take):
        if t:
            rel = donor[:, list(idx)] - donor[:, b:b + 1]
            out[:, list(idx)] = joints[:, b:b + 1] + np.einsum("tij,tkj->tki", rot, rel)
    return out


def _rotations(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (T, 3) (radians) -> rotation matrices (T, 3, 3) (Rodrigues)."""
    th = np.linalg.norm(rotvec, axis=-1)[:, None, None]
    k = rotvec / np.maximum(th[:, :, 0], 1e-12)
    K = np.zeros((len(k), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(0, 2, 1)
    return np.eye(3) + np.sin(th) * K + (1.0 - np.cos(th)) * (K @ K)


def _turn(out: np.ndarray, points, pivot: np.ndarray, rot: np.ndarray) -> None:
    """Rotate ``points`` of (T, 33, 3) ``out`` about ``pivot`` (T, 3) by ``rot`` (T, 3, 3), in place."""
    rel = out[:, list(points)] - pivot[:, None]
    out[:, list(points)] = pivot[:, None] + np.einsum("tij,tkj->tki", rot, rel)


def _swing(T: int, std: float, rng, dims: int) -> np.ndarray:
    """(T, dims) radians: a random offset plus a slow random swing of period 30-120 frames
    (1-4 s at 30 fps; the LSTM's sequences from cameras at other rates swing that many of their
    own frames, so at 60 fps twice as fast in real time: a known wart, kept so that the code
    reproduces the shipped run full25)."""
    t = np.arange(T)[:, None] / 30.0
    return (rng.normal(0.0, std, dims) + rng.normal(0.0, std / 2, dims)
            * np.sin(2 * np.pi * t / rng.uniform(1.0, 4.0, dims) + rng.uniform(0, 2 * np.pi, dims)))


FACE = tuple(range(11))
HINGE_MAX = np.radians(150.0)
BENT = np.sin(np.radians([5.0, 20.0]))   # a hinge's turn fades in as it bends from 5 to 20 degrees


def turn_joints(joints: np.ndarray, std_deg: float, rng: np.random.Generator) -> np.ndarray:
    """New poses near the clip's own: (T, 33, 3) motion with its joints turned a little.

    Each elbow and knee flexes or extends (about its hinge axis, kept within 0-150 degrees;
    the turn fades out as the joint straightens, where the axis is undefined), each shoulder and hip
    turns about all three axes, the head about the shoulders and the upper body about the hips
    (half and a third of ``std_deg``). Every turn is a random offset plus a slow swing, so the
    motion stays smooth; every bone keeps its length. Children are turned before their parents,
    so each turn carries the ones below it along.
    """
    std = np.radians(std_deg)
    out = joints.astype(np.float64, copy=True)
    T = len(out)
    # elbows and knees: each limb of LIMBS starts at its hinge, the points below it follow
    # (left arm, left leg, then the right ones)
    for root, (hinge, *below) in LIMBS[0::2] + LIMBS[1::2]:
        upper, lower = out[:, hinge] - out[:, root], out[:, below[0]] - out[:, hinge]
        axis = np.cross(upper, lower)
        norm = np.linalg.norm(axis, axis=-1)
        lens = np.linalg.norm(upper, axis=-1) * np.linalg.norm(lower, axis=-1) + 1e-12
        flex = np.arctan2(norm / lens, np.sum(upper * lower, axis=-1) / lens)
        delta = np.clip(flex + _swing(T, std, rng, 1)[:, 0], 0.0, HINGE_MAX) - flex
        delta *= np.clip((norm / lens - BENT[0]) / (BENT[1] - BENT[0]), 0.0, 1.0)
        axis = axis / np.maximum(norm, 1e-12)[:, None]
        _turn(out, below, out[:, hinge], _rotations(axis * delta[:, None]))
    for root, limb in LIMBS:                                      # shoulders and hips
        _turn(out, limb, out[:, root], _rotations(_swing(T, std, rng, 3)))
    shoulders = out[:, 11:13].mean(axis=1)
    _turn(out, FACE, shoulders, _rotations(_swing(T, std / 2, rng, 3)))
    hips = out[:, 23:25].mean(axis=1)
    arms = LIMBS[0][1] + LIMBS[1][1]
    _turn(out, FACE + (11, 12) + arms, hips, _rotations(_swing(T, std / 3, rng, 3)))
    return out.astype(joints.dtype)


def augment(joints: np.ndarray, donor: np.ndarray | None, cfg: DataConfig,
            rng: np.random.Generator, turn: bool = False) -> np.ndarray:
    """One random augmentation of a (T, 33, 3) clip segment (world frame); ``turn``: with
    joints turned (``turn_joints``, ``cfg.joint_turn``)."""
    if donor is not None and rng.random() < cfg.limb_mix:
        joints = mix_limbs(joints, donor[: len(joints)], rng)
    if turn and cfg.joint_turn > 0:
        joints = turn_joints(joints, cfg.joint_turn, rng)
    if rng.random() < cfg.mirror:
        joints = mirror(joints)
    factors = {}
    for seg in SEGMENTS:
        factors[seg] = float(np.clip(rng.normal(1.0, cfg.bone_scale), 0.8, 1.2))
    return scale_bones(joints, factors, rng.uniform(*cfg.body_scale))


# --- sample sequences -----------------------------------------------------------------------

def _segments(clips, n: int, cfg: DataConfig, rng, augment_on: bool, frame_dt=None):
    """n random (seq_len, 33, 3) world-frame segments from ``clips`` (with speed changes).
    ``frame_dt`` (n,): each segment's frame interval in 30 fps frames (2: a 15 fps camera),
    the motion resampled accordingly on top of its tempo change."""
    L = cfg.seq_len
    lengths = np.array([len(c) for c in clips], float)
    for i in range(n):
        c = rng.choice(len(clips), p=lengths / lengths.sum())
        speed = rng.uniform(*cfg.speed) if augment_on else 1.0
        if frame_dt is not None:
            speed *= float(frame_dt[i])
        need = int(np.ceil(L * speed)) + 2
        clip = clips[c]
        if len(clip) < need:
            clip = np.concatenate([clip, clip[::-1]] * (need // max(len(clip), 1) + 1))
        a = rng.integers(0, len(clip) - need + 1)
        seg = clip[a:a + need]
        if speed != 1.0:
            seg = resample(seg, speed)
        yield seg[:L]


def in_place(joints: np.ndarray) -> np.ndarray:
    """(T, 33, 3) motion without its travel over the ground: the hip midpoint's x and z are
    held at their mean (a person in front of a webcam moves, but stays in its view)."""
    root = joints[:, [23, 24]].mean(axis=1)                    # (T, 3)
    travel = root[:, [0, 2]] - root[:, [0, 2]].mean(axis=0)
    out = joints.copy()
    out[..., 0] -= travel[:, None, 0]
    out[..., 2] -= travel[:, None, 1]
    return out


def make_camera(joints: np.ndarray, close_up: bool, rng) -> tuple[np.ndarray, project.Camera]:
    """(motion, camera) for one view: the whole motion in view, or a webcam close-up of the
    motion held in place."""
    if close_up:
        joints = in_place(joints)
        return joints, project.close_camera(joints, rng)
    return joints, project.random_camera(joints, rng)


def make_sequences(clips: list[np.ndarray], n: int, cfg: DataConfig, rng: np.random.Generator,
                   augment_on: bool = True, frame_dt=None, turn: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """n sample sequences -> (x2d (n, L, 33, 3) normalized 2D, y3d (n, L, 33, 3) root-relative).
    ``frame_dt`` (n,): the sequences as cameras with these frame intervals (in 30 fps frames)
    see the motion (None: 30 fps)."""
    noise = project.NoiseConfig(**cfg.noise)
    xs, ys = [], []
    donors = list(_segments(clips, n, cfg, rng, augment_on, frame_dt)) if augment_on else None
    for i, seg in enumerate(_segments(clips, n, cfg, rng, augment_on, frame_dt)):
        if augment_on:
            seg = augment(seg, donors[i], cfg, rng, turn)
        seg, camera = make_camera(seg, rng.random() < cfg.close_up, rng)
        cam3d, px = project.view(seg, camera)
        xs.append(normalize_2d(project.corrupt(px, camera.size, rng, noise, depth=cam3d[..., 2])))
        ys.append(normalize_3d(cam3d))
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def view_clip(joints: np.ndarray, cfg: DataConfig, rng, close_up: bool = False) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A whole test clip through one random camera (or a webcam close-up):
    (kp2d px (T, 33, 3), y3d (T, 33, 3), size)."""
    joints, camera = make_camera(joints, close_up, rng)
    cam3d, px = project.view(joints, camera)
    noise = project.NoiseConfig(**{**cfg.noise, "swap_rate": 0.0})
    return project.corrupt(px, camera.size, rng, noise, depth=cam3d[..., 2]), normalize_3d(cam3d), camera.size


def held_out_views(clips, close_ups: list[bool], cfg: DataConfig, rng, framing: str,
                   fps: float = 30.0) -> list[dict]:
    """Every clip (mocap.Clip) through one camera per entry of ``close_ups`` (True: a webcam
    close-up), clip by clip: {"clip", "camera", "kp2d", "y3d", "size", "framing", "fps"} per
    view. ``fps`` other than the clips' 30: the motion is resampled as a camera at that rate
    would see it (each frame its own detector noise)."""
    views = []
    for clip in clips:
        joints = clip.joints if fps == 30.0 else resample(clip.joints, 30.0 / fps)
        for k, close_up in enumerate(close_ups):
            kp, y3d, size = view_clip(joints, cfg, rng, close_up=close_up)
            views.append({"clip": clip.name, "camera": k, "kp2d": kp, "y3d": y3d, "size": size,
                          "framing": framing, "fps": fps})
    return views


@dataclass
class Dataset:
    """Arrays for training and validation, and the held-out test views."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test: list[dict]            # {"clip", "camera", "kp2d", "y3d", "size", "framing", "fps"} per view
    info: dict
    smoother_x: np.ndarray | None = None    # the LSTM's own training sequences (smoother_fps)
    smoother_y: np.ndarray | None = None
    smoother_dt: np.ndarray | None = None   # (N,) their frame intervals in 30 fps frames
    train_dt: np.ndarray | None = None      # (N,) frame intervals of train_x (None: all 1, 30 fps)

    def save(self, path: Path) -> None:
        arrays = {"train_x": self.train_x, "train_y": self.train_y,
                  "val_x": self.val_x, "val_y": self.val_y}
        if self.smoother_x is not None:
            arrays["smoother_x"], arrays["smoother_y"] = self.smoother_x, self.smoother_y
            arrays["smoother_dt"] = self.smoother_dt
        for i, t in enumerate(self.test):
            arrays[f"test{i}_kp2d"], arrays[f"test{i}_y3d"] = t["kp2d"], t["y3d"]
        meta = {"info": self.info, "test": [{k: t[k] for k in ("clip", "camera", "size", "framing", "fps")}
                                            for t in self.test]}
        arrays["meta"] = np.array(json.dumps(meta))
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Dataset":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            test = [{**m, "size": tuple(m["size"]), "kp2d": z[f"test{i}_kp2d"], "y3d": z[f"test{i}_y3d"]}
                    for i, m in enumerate(meta["test"])]
            smoother = ((z["smoother_x"], z["smoother_y"], z["smoother_dt"]) if "smoother_x" in z.files
                        else (None, None, None))
            return cls(z["train_x"], z["train_y"], z["val_x"], z["val_y"], test, meta["info"], *smoother)


def split_clips(clips) -> tuple[list, list, list]:
    """Split mocap.Clip objects by name into (train, val, test) lists."""
    names = {c.name for c in clips}
    missing = [n for n in TEST_CLIPS + VAL_CLIPS if n not in names]
    if missing:
        raise ValueError(f"motion data lacks the held-out clips {missing}")
    test = [c for c in clips if c.name in TEST_CLIPS]
    val = [c for c in clips if c.name in VAL_CLIPS]
    train = [c for c in clips if c.name not in TEST_CLIPS + VAL_CLIPS]
    return train, val, test


def build(cfg: DataConfig, cache_dir: Path | None = None, progress=None) -> Dataset:
    """Make (or load from ``cache_dir``) the dataset for ``cfg``."""
    cache = Path(cache_dir) / f"dataset-{cfg.key()}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        log.info("dataset from cache %s", cache)
        return Dataset.load(cache)
    from .mocap import load_motion
    from .synth import synth_clips
    rng = np.random.default_rng(cfg.seed)
    train, val, test = split_clips(load_motion())
    synth = [c.joints for c in synth_clips(cfg.synth_clips, 300, seed=cfg.seed, seated=cfg.synth_seated)]
    rx, ry = make_sequences([c.joints for c in train], cfg.real_sequences, cfg, rng, turn=True)
    sx, sy = make_sequences(synth, cfg.synth_sequences, cfg, rng)
    vx, vy = make_sequences([c.joints for c in val], cfg.val_sequences, cfg, rng, augment_on=False)
    # Each kind of test view has a generator of its own: its draws do not depend on the
    # training-data settings nor on the other kinds. No real held-out clip sits: seated motion is
    # measured on synthetic clips from a seed no training clip uses (the same generator, so an
    # optimistic measure of seated poses).
    seated = synth_clips(cfg.test_seated_clips, 300, seed=SEATED_TEST_SEED + cfg.seed, seated=1.0)
    rngs = [np.random.default_rng([cfg.seed, k]) for k in (7919, 7920, 7921, 7922)]
    views = (held_out_views(test, [False] * cfg.test_cameras, cfg, rngs[0], "full")
             + held_out_views(test, [True] * cfg.test_close_cameras, cfg, rngs[1], "close")
             + held_out_views(seated, [False, False, True, True], cfg, rngs[2], "seated")
             + held_out_views(test, [False] * cfg.test_low_fps_cameras, cfg, rngs[3], "15fps", fps=15.0))
    lstm_x = lstm_y = lstm_dt = None
    if cfg.smoother_fps is not None:
        # The LSTM's own sequences, with a generator of their own (the lifter's data above do
        # not change): the training motion seen by cameras running at smoother_fps (log-uniform),
        # each sequence's frame interval kept: the LSTM is told it, as posits-live tells it the
        # camera's.
        lo, hi = cfg.smoother_fps
        lrng = np.random.default_rng([cfg.seed, 7923])
        n_real, n_synth = cfg.real_sequences // 2, cfg.synth_sequences // 2
        lstm_dt = np.exp(lrng.uniform(np.log(30.0 / hi), np.log(30.0 / lo), n_real + n_synth)).astype(np.float32)
        lrx, lry = make_sequences([c.joints for c in train], n_real, cfg, lrng, frame_dt=lstm_dt[:n_real], turn=True)
        lsx, lsy = make_sequences(synth, n_synth, cfg, lrng, frame_dt=lstm_dt[n_real:])
        lstm_x, lstm_y = np.concatenate([lrx, lsx]), np.concatenate([lry, lsy])
    info = {"config": asdict(cfg), "key": cfg.key(),
            "train_clips": [c.name for c in train], "val_clips": [c.name for c in val],
            "test_clips": [c.name for c in test],
            "sources": sorted({f"{c.source} ({c.licence})" for c in train + val + test}),
            "synthetic_clips": cfg.synth_clips,
            "train_frames_real": int(sum(len(c.joints) for c in train))}
    ds = Dataset(np.concatenate([rx, sx]), np.concatenate([ry, sy]), vx, vy, views, info, lstm_x, lstm_y, lstm_dt)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        ds.save(cache)
    return ds


def windows(x: np.ndarray, window: int) -> np.ndarray:
    """Causal windows of sequences: (N, L, 33, 3) -> (N, L, W, 33, 3), edge-padded at the start
    exactly like the live lifter pads a new track with its first frame."""
    pad = np.repeat(x[:, :1], window - 1, axis=1)
    xp = np.concatenate([pad, x], axis=1)
    idx = np.arange(x.shape[1])[:, None] + np.arange(window)[None, :]
    return xp[:, idx]

"""Synthetic motion: a randomly sized kinematic skeleton moved smoothly within joint limits.

Each clip draws a body (height 1.50-1.95 m, segment proportions varied by a few per cent), then
moves every joint degree of freedom along a smooth random curve (a sum of a few low-frequency
sinusoids squashed into the joint's range) and turns the root now and then. A fraction of the
clips sit (``seated``: hips and knees bent near a right angle, feet on the floor, the upper body
as free as in the others: a person at a desk or on a sofa); of the others about a third walk or
jog (an antiphase hip/knee/arm cycle on top of the random curves) while moving forward.
The pose is placed on the ground (lowest foot point at y ~ 0, smoothed) and turned into MediaPipe's
33 landmarks by ``posits.train.mocap.place_landmarks``, the same placement as the real mocap.

Segment frames follow ``posits.train.mocap``: columns forward, up, right; identity in the neutral
standing pose facing +x. Output: ``Clip`` (T, 33, 3) float32, metres, y up, 30 fps.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .mocap import FOOT_OFFSETS, FPS, REF_LEG_LENGTH, Clip, axis_rotation, place_landmarks, side_offsets

log = logging.getLogger(__name__)

#: Joint limits in degrees: dof -> (lo, hi). Signs (per segment frame x fwd, y up, z right):
#: flexion moves the distal segment forward (knee: backward), abduction moves it away from the
#: midline, twist is about the segment's long axis (outward positive), dorsiflexion lifts the toes.
LIMITS: dict[str, tuple[float, float]] = {
    "spine_flex": (-20.0, 45.0), "spine_bend": (-25.0, 25.0), "spine_twist": (-35.0, 35.0),
    "neck_flex": (-35.0, 45.0), "neck_bend": (-30.0, 30.0), "neck_twist": (-60.0, 60.0),
    "hip_flex": (-20.0, 110.0), "hip_abd": (-10.0, 40.0), "hip_twist": (-30.0, 35.0),
    "knee_flex": (0.0, 130.0),
    "ankle_flex": (-40.0, 20.0), "ankle_inv": (-15.0, 15.0),
    "shoulder_flex": (-40.0, 160.0), "shoulder_abd": (-25.0, 150.0), "shoulder_twist": (-60.0, 80.0),
    "elbow_flex": (0.0, 145.0),
    "wrist_twist": (-80.0, 80.0), "wrist_flex": (-60.0, 60.0), "wrist_dev": (-20.0, 30.0),
}
#: Typical value (deg) and spread (0..1 of the range) of each dof's random curve.
#: The shoulder's typical pose is near the side of the body (arms hanging, the commonest pose in
#: front of a webcam): measured on the landmarks, upper-arm abduction spans 0-55 degrees (10th-90th
#: percentile) in the synthetic clips; the real training clips (mostly acrobatics) span 6-115. With
#: the earlier typical values (flexion 15, abduction 15, at least 5 at the side) the span was 14-63:
#: no training motion had arms at the sides, and the lifter placed hanging arms about 5 cm too far out.
TYPICAL: dict[str, tuple[float, float]] = {
    "spine_flex": (5.0, 0.35), "spine_bend": (0.0, 0.3), "spine_twist": (0.0, 0.4),
    "neck_flex": (5.0, 0.35), "neck_bend": (0.0, 0.3), "neck_twist": (0.0, 0.45),
    "hip_flex": (10.0, 0.35), "hip_abd": (5.0, 0.3), "hip_twist": (0.0, 0.35),
    "knee_flex": (15.0, 0.4),
    "ankle_flex": (0.0, 0.35), "ankle_inv": (0.0, 0.3),
    "shoulder_flex": (10.0, 0.45), "shoulder_abd": (8.0, 0.45), "shoulder_twist": (0.0, 0.4),
    "elbow_flex": (30.0, 0.5),
    "wrist_twist": (0.0, 0.5), "wrist_flex": (0.0, 0.4), "wrist_dev": (0.0, 0.35),
}
#: Seated clips replace these entries of TYPICAL: hips flexed 72-96 deg and knees 74-108 deg
#: (10th-90th percentile over the seated frames), thighs a little apart. Without them no
#: synthetic frame had hip and knee both flexed past 60 deg, and the real training clips reach
#: such angles only while getting up, rolling or crawling: sitting, the commonest pose in front of
#: a webcam, was outside the training data.
SEATED: dict[str, tuple[float, float]] = {
    "hip_flex": (85.0, 0.25), "hip_abd": (10.0, 0.25), "hip_twist": (0.0, 0.25),
    "knee_flex": (90.0, 0.35), "ankle_flex": (5.0, 0.3),
}
SIDED = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
#: Segment lengths as fractions of body height (after Drillis & Contini / Winter).
PROPORTIONS: dict[str, float] = {
    "thigh": 0.245, "shin": 0.246, "upper_arm": 0.172, "forearm": 0.157,
    "hip_width": 0.100, "shoulder_width": 0.215, "lumbar": 0.060, "torso": 0.225,
    "neck": 0.092,
}


@dataclass(frozen=True)
class Body:
    """Segment lengths in metres (keys of PROPORTIONS) of one synthetic subject."""

    lengths: dict[str, float]


@dataclass(frozen=True)
class SynthMotion:
    """One synthetic clip before landmark placement.

    Attributes:
        angles: dof name (e.g. "left_knee_flex", "spine_twist") -> (T,) degrees.
        joints: (T, 33, 3) float32 landmarks.
        body: the subject's segment lengths.
    """

    angles: dict[str, np.ndarray]
    joints: np.ndarray
    body: Body


def random_body(rng: np.random.Generator) -> Body:
    """Height uniform in 1.50-1.95 m; each proportion varied by N(0, 3 %) (5 % for widths)."""
    height = rng.uniform(1.50, 1.95)
    lengths = {}
    for k, frac in PROPORTIONS.items():
        sd = 0.05 if "width" in k else 0.03
        lengths[k] = float(height * frac * (1.0 + np.clip(rng.normal(0.0, sd), -2 * sd, 2 * sd)))
    return Body(lengths)


def smooth_curve(rng: np.random.Generator, t: np.ndarray, n: int = 3,
                 fmin: float = 0.08, fmax: float = 0.9) -> np.ndarray:
    """A smooth random signal in [-1, 1]: sum of `n` sinusoids, frequencies in [fmin, fmax] Hz
    (log-uniform), random phases and weights, normalised by the sum of weights. -> (T,)"""
    f = np.exp(rng.uniform(np.log(fmin), np.log(fmax), n))
    w = rng.uniform(0.2, 1.0, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    return (w[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0) / w.sum()


def squash(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map any real x (T,) smoothly into the open interval (lo, hi): lo + (hi - lo) * sigmoid(x)."""
    return lo + (hi - lo) / (1.0 + np.exp(-x))


def _logit(v: float, lo: float, hi: float) -> float:
    p = np.clip((v - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    return float(np.log(p / (1 - p)))


def random_angles(rng: np.random.Generator, t: np.ndarray, gait: dict | None,
                  seated: bool = False) -> dict[str, np.ndarray]:
    """Joint angles (deg) for every dof: dof name -> (T,), always inside LIMITS.

    Each dof is squash(centre + gain * smooth_curve + gait term) into its limits; the centre is
    the logit of a random value near TYPICAL (SEATED's values for the legs of a seated clip),
    so the curve hovers around plausible poses.
    """
    typical = {**TYPICAL, **SEATED} if seated else TYPICAL
    out: dict[str, np.ndarray] = {}
    for side in ("left", "right", None):
        for dof, (lo, hi) in LIMITS.items():
            sided = dof.split("_")[0] in SIDED
            if sided != (side is not None):
                continue
            name = f"{side}_{dof}" if side else dof
            typ, spread = typical[dof]
            centre = typ + rng.normal(0.0, spread * 0.25 * (hi - lo))
            x = _logit(centre, lo, hi) + rng.uniform(0.5, 2.5) * spread * smooth_curve(rng, t)
            if gait is not None:
                x = x + _gait_term(dof, side, t, gait)
            out[name] = squash(x, lo, hi)
    # Keep the arm out of the torso: at most a little adduction (arm against the side) unless the
    # arm is raised forward.
    for side in ("left", "right"):
        flex = out[f"{side}_shoulder_flex"]
        abd_min = -2.0 - 28.0 * np.clip(flex / 90.0, 0.0, 1.0)
        abd = out[f"{side}_shoulder_abd"]
        out[f"{side}_shoulder_abd"] = abd_min + (abd - LIMITS["shoulder_abd"][0]) * (
            LIMITS["shoulder_abd"][1] - abd_min) / (LIMITS["shoulder_abd"][1] - LIMITS["shoulder_abd"][0])
    return out


def _gait_term(dof: str, side: str | None, t: np.ndarray, gait: dict) -> np.ndarray:
    """Logit-space walking/jogging cycle: hips and arms swing in antiphase, knees flex in swing."""
    if side is None:
        return np.zeros_like(t)
    phase = 2 * np.pi * gait["cadence"] * t + gait["phase"] + (np.pi if side == "right" else 0.0)
    amp = gait["amplitude"]
    if dof == "hip_flex":
        return amp * 1.2 * np.sin(phase)
    if dof == "knee_flex":
        return amp * 1.5 * np.maximum(np.sin(phase + 1.2), 0.0) - 0.5 * amp
    if dof == "ankle_flex":
        return amp * 0.6 * np.sin(phase - 0.5)
    if dof == "shoulder_flex":
        return -amp * 0.8 * np.sin(phase)
    if dof == "elbow_flex":
        return amp * 0.3 * np.sin(phase)
    return np.zeros_like(t)


def _R(axis: str, deg: np.ndarray) -> np.ndarray:
    return axis_rotation(axis, np.deg2rad(deg))


def _limb_rotation(flex: np.ndarray, abd: np.ndarray, twist: np.ndarray, side: str) -> np.ndarray:
    """Local rotation of a ball joint (T, 3, 3): twist about y, then abduction about x (away from
    the midline: +x rotation on the left, -x on the right), then flexion about z (forward)."""
    s = 1.0 if side == "left" else -1.0
    return _R("z", flex) @ _R("x", s * abd) @ _R("y", s * twist)


def root_path(rng: np.random.Generator, t: np.ndarray, speed: float, drift: float = 0.3
              ) -> tuple[np.ndarray, np.ndarray]:
    """Root yaw (T,) radians, with 0-3 smooth turns of up to +-120 deg, and horizontal position
    (T, 3) moving at `speed` m/s along the facing direction plus a slow random drift of up to
    `drift` metres."""
    T = len(t)
    yaw = np.full(T, rng.uniform(-np.pi, np.pi))
    for _ in range(rng.integers(0, 4)):
        t0, dur = rng.uniform(0, t[-1] + 1e-9), rng.uniform(0.6, 2.0)
        yaw += rng.uniform(-2.1, 2.1) * 0.5 * (1 + np.tanh((t - t0) / (0.25 * dur)))
    fwd = np.stack([np.cos(yaw), np.zeros(T), -np.sin(yaw)], -1)   # rotation about +y of +x
    pos = np.cumsum(fwd * speed / FPS, axis=0)
    pos[:, 0] += drift * smooth_curve(rng, t, 2, 0.05, 0.3)
    pos[:, 2] += drift * smooth_curve(rng, t, 2, 0.05, 0.3)
    return yaw, pos


def pose_body(body: Body, angles: dict[str, np.ndarray], yaw: np.ndarray, root_xz: np.ndarray
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Forward kinematics -> joint centres (T, 3) and segment frames (T, 3, 3) for
    place_landmarks, plus the landmark scale. The root is lifted so the feet touch y = 0."""
    L = body.lengths
    T = len(yaw)
    y_axis = lambda v: np.array([0.0, v, 0.0])  # noqa: E731
    pelvis = _R("y", np.rad2deg(yaw)) @ _R("z", -0.3 * angles["spine_flex"])   # pelvic tilt
    root = np.zeros((T, 3))
    c: dict[str, np.ndarray] = {}
    f: dict[str, np.ndarray] = {"pelvis": pelvis}
    spine_base = root + pelvis @ y_axis(L["lumbar"])
    chest = pelvis @ _R("z", -angles["spine_flex"]) @ _R("x", angles["spine_bend"]) @ _R("y", angles["spine_twist"])
    neck_base = spine_base + chest @ np.array([-0.02, L["torso"], 0.0])
    head = chest @ _R("z", -angles["neck_flex"]) @ _R("x", angles["neck_bend"]) @ _R("y", angles["neck_twist"])
    c["head"] = neck_base + head @ np.array([0.01, L["neck"], 0.0])
    f["head"] = head
    for side, s in (("left", -1.0), ("right", 1.0)):
        a = {k[len(side) + 1:]: v for k, v in angles.items() if k.startswith(side)}
        hip = root + pelvis @ np.array([0.0, 0.0, s * L["hip_width"] / 2])
        thigh = pelvis @ _limb_rotation(a["hip_flex"], a["hip_abd"], a["hip_twist"], side)
        knee = hip + thigh @ y_axis(-L["thigh"])
        shin = thigh @ _R("z", -a["knee_flex"])
        ankle = knee + shin @ y_axis(-L["shin"])
        foot = shin @ _R("z", a["ankle_flex"]) @ _R("x", -s * a["ankle_inv"])
        shoulder = spine_base + chest @ np.array([-0.02, L["torso"], s * L["shoulder_width"] / 2])
        upper = chest @ _limb_rotation(a["shoulder_flex"], a["shoulder_abd"], a["shoulder_twist"], side)
        elbow = shoulder + upper @ y_axis(-L["upper_arm"])
        fore = upper @ _R("z", a["elbow_flex"])
        wrist = elbow + fore @ y_axis(-L["forearm"])
        # Neutral palm faces the midline: flexion turns the fingers towards it (about x), ulnar
        # deviation (positive) turns them backwards (about z).
        hand = fore @ _R("y", -s * a["wrist_twist"]) @ _R("x", s * a["wrist_flex"]) @ _R("z", -a["wrist_dev"])
        c.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle,
                  f"{side}_shoulder": shoulder, f"{side}_elbow": elbow, f"{side}_wrist": wrist})
        f.update({f"{side}_foot": foot, f"{side}_hand": hand})
    scale = (L["thigh"] + L["shin"]) / REF_LEG_LENGTH
    lift = _ground_lift(c, f, scale)
    shift = np.concatenate([root_xz[:, :1], lift[:, None], root_xz[:, 2:]], axis=1)
    return {k: v + shift for k, v in c.items()}, f, scale


def _ground_lift(c: dict[str, np.ndarray], f: dict[str, np.ndarray], scale: float) -> np.ndarray:
    """Root height (T,) putting the lowest heel/toe at y ~ 0, smoothed to avoid kinks."""
    lows = []
    for name, off in side_offsets(FOOT_OFFSETS).items():
        side = name.split("_")[0]
        lows.append((c[f"{side}_ankle"] + scale * (f[f"{side}_foot"] @ off))[:, 1])
    lift = -np.min(lows, axis=0)
    k = np.hanning(9)
    k /= k.sum()
    padded = np.pad(lift, 4, mode="edge")
    return np.convolve(padded, k, mode="valid")


def synth_motion(rng: np.random.Generator, frames: int, seated: float = 0.0) -> SynthMotion:
    """One random clip: body, angles, root path, landmarks. ``seated``: probability that the
    clip sits (SEATED legs, no gait, the root drifting a few centimetres, as on a chair)."""
    t = np.arange(frames) / FPS
    body = random_body(rng)
    gait = None
    speed = 0.0
    sits = rng.random() < seated
    if not sits and rng.random() < 0.35:
        gait = {"cadence": rng.uniform(0.8, 1.4), "phase": rng.uniform(0, 2 * np.pi),
                "amplitude": rng.uniform(0.6, 1.6)}
        speed = 0.7 * gait["amplitude"] * gait["cadence"] * body.lengths["thigh"] * 2.0
    angles = random_angles(rng, t, gait, seated=sits)
    yaw, xz = root_path(rng, t, speed, drift=0.05 if sits else 0.3)
    centres, segs, scale = pose_body(body, angles, yaw, xz)
    return SynthMotion(angles, place_landmarks(centres, segs, scale), body)


def synth_clips(n_clips: int, frames: int, seed: int, seated: float = 0.0) -> list[Clip]:
    """`n_clips` synthetic clips of `frames` frames at 30 fps, reproducible from `seed`; each
    sits with probability ``seated``."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        m = synth_motion(rng, frames, seated)
        clips.append(Clip(f"synth/{seed}/{i:04d}", "posits.train.synth", "generated (Apache-2.0)",
                          FPS, m.joints))
    log.debug("generated %d synthetic clips of %d frames (seed %d)", n_clips, frames, seed)
    return clips

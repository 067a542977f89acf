"""Virtual cameras and a detector-like noise model: 3D motion -> what MediaPipe would report.

World coordinates are the motion data's: metres, y up. Camera coordinates follow OpenCV:
x right, y down, z away from the camera. A camera is a static pinhole looking at the
person from a random distance, height, yaw and pitch, with a random field of view and image
size (landscape and portrait): ``random_camera`` frames the whole motion, ``close_camera``
frames the upper body like a webcam on a desk (the hips and legs below the image).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posits.models.skeleton import BODY_JOINTS, MIRROR, NUM_LANDMARKS

IMAGE_SIZES = ((640, 480), (1280, 720), (1920, 1080), (720, 1280), (1080, 1920), (640, 640), (960, 540))


@dataclass(frozen=True)
class Camera:
    """Pinhole camera. rotation (3, 3) world->camera rows (right, down, forward); position (3,)
    in world metres; focal in pixels; size (width, height)."""

    rotation: np.ndarray
    position: np.ndarray
    focal: float
    size: tuple[int, int]

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world -> (..., 3) camera coordinates."""
        return (points - self.position) @ self.rotation.T

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera coordinates -> (..., 2) pixels."""
        z = np.maximum(points_cam[..., 2:3], 1e-3)
        centre = np.array(self.size, dtype=np.float64) / 2.0
        return self.focal * points_cam[..., :2] / z + centre


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """World->camera rotation for a camera at ``position`` looking at ``target`` (y-up world)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
    return rot


def random_camera(joints: np.ndarray, rng: np.random.Generator) -> Camera:
    """A camera that sees the whole motion ``joints`` (T, 33, 3) from a random viewpoint."""
    root = joints[:, 23:25].mean(axis=(0, 1))
    spread = np.abs(joints[..., [0, 2]] - root[[0, 2]]).max()       # how far the motion travels
    distance = rng.uniform(2.0, 7.0) + spread
    yaw = rng.uniform(-np.pi, np.pi)
    height = rng.uniform(0.3, 2.3)
    position = root + np.array([distance * np.cos(yaw), 0.0, distance * np.sin(yaw)])
    position[1] = height
    target = root + np.array([rng.normal(0, 0.15), rng.normal(0, 0.2), rng.normal(0, 0.15)])
    rotation = look_at(position, target, roll=rng.normal(0.0, np.radians(3.0)))
    size = IMAGE_SIZES[rng.integers(len(IMAGE_SIZES))]
    fov = np.radians(rng.uniform(45.0, 85.0))                        # across the long side
    focal = max(size) / 2.0 / np.tan(fov / 2.0)
    return Camera(rotation=rotation, position=position, focal=float(focal), size=size)


WEBCAM_SIZES = ((640, 480), (1280, 720), (1920, 1080), (960, 540))


def facing_yaw(joints: np.ndarray) -> float:
    """The direction (T, 33, 3) motion mostly faces: yaw (radians, about y) of the mean of
    the torso's forward vectors (hips left-to-right crossed with up)."""
    across = joints[:, 23] - joints[:, 24]                      # right hip -> left hip
    forward = np.cross(across, np.array([0.0, 1.0, 0.0])).mean(axis=0)
    return float(np.arctan2(forward[2], forward[0]))


def close_camera(joints: np.ndarray, rng: np.random.Generator) -> Camera:
    """A webcam in front of the person, framing the head and upper body of (T, 33, 3) motion.

    The image runs from above the head down to a cut between the chest and the upper thighs
    (0.3-1.4 of the shoulder-to-hip distance below the shoulders), so the legs, and often the
    hips, are outside it. The camera faces the person (yaw within about 35 degrees of the
    way the torso faces), at about chest-to-eye height, 45-80 degree field of view, and no
    point of the motion comes within 40 cm of it (then the view takes in more). Meant for
    motion that stays in place (see dataset.in_place).
    """
    shoulders = joints[:, [11, 12]].mean(axis=1)                 # (T, 3)
    hips = joints[:, [23, 24]].mean(axis=1)
    torso = float(np.median(np.linalg.norm(shoulders - hips, axis=-1)))
    top = float(np.percentile(joints[:, :11, 1], 95)) + 0.12     # above the head
    cut = float(np.median(shoulders[:, 1])) - rng.uniform(0.3, 1.4) * torso
    centre_xz = np.median(shoulders[:, [0, 2]], axis=0)
    size = WEBCAM_SIZES[rng.integers(len(WEBCAM_SIZES))]
    fov = np.radians(rng.uniform(45.0, 80.0))                    # across the long side
    focal = max(size) / 2.0 / np.tan(fov / 2.0)
    half_v = np.arctan(size[1] / 2.0 / focal)
    distance = 0.5 * (top - cut) / np.tan(half_v) + 0.1           # the extent fills the height
    yaw = facing_yaw(joints) + rng.normal(0.0, np.radians(35.0))
    toward = np.array([np.cos(yaw), np.sin(yaw)])               # from the person to the camera
    reach = float(((joints[..., [0, 2]] - centre_xz) @ toward).max())
    distance = max(distance, reach + 0.4)                        # nothing within 40 cm of the lens
    height = np.median(shoulders[:, 1]) + rng.uniform(-0.25, 0.2)
    position = np.array([centre_xz[0] + distance * np.cos(yaw), height, centre_xz[1] + distance * np.sin(yaw)])
    target = np.array([centre_xz[0], 0.5 * (top + cut), centre_xz[1]]) + rng.normal(0.0, 0.04, 3)
    rotation = look_at(position, target, roll=rng.normal(0.0, np.radians(3.0)))
    return Camera(rotation=rotation, position=position, focal=float(focal), size=size)


@dataclass(frozen=True)
class NoiseConfig:
    """Detector-like corruption, relative to the person's size in pixels."""

    jitter: tuple[float, float] = (0.004, 0.02)   # per-sequence std range, fraction of body scale
    outlier_rate: float = 0.004                   # per joint and frame
    outlier_scale: float = 0.3                    # fraction of body scale
    occlusion_rate: float = 0.03                  # per joint and sequence: a low-visibility span
    missing_rate: float = 0.01                    # per joint and frame: visibility 0
    swap_rate: float = 0.08                       # per sequence: a brief left/right swap
    self_occlusion: tuple[float, float] = (0.3, 0.9)  # visibility loss of joints behind the body
    outside_error: tuple[float, float] = (0.08, 0.18)  # guess error outside the image: a + b * distance


def body_scale_px(xy: np.ndarray) -> np.ndarray:
    """(T, 33, 2) -> (T,) RMS distance of the body joints from the hip midpoint, in pixels."""
    centre = xy[:, 23:25].mean(axis=1, keepdims=True)
    return np.sqrt(((xy[:, list(BODY_JOINTS)] - centre) ** 2).sum(-1).mean(-1))


def behind_body(depth: np.ndarray) -> np.ndarray:
    """(T, 33) camera depths -> (T, 33) in [0, 1]: how far each joint is behind the torso.

    MediaPipe's visibility drops for landmarks the body hides from the camera (the far arm,
    the face of a person turned away). Joints more than ~5 cm behind the torso's mean depth
    count as hidden, smoothly. Face landmarks are left out: MediaPipe keeps their visibility
    near 1 (measured on tests/data/walk.mp4, where the far arm drops to 0.1-0.6).
    """
    torso = depth[:, [11, 12, 23, 24]].mean(axis=1, keepdims=True)
    hidden = 1.0 / (1.0 + np.exp(-(depth - torso - 0.06) / 0.03))
    hidden[:, :11] = 0.0
    return hidden


def corrupt(xy: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
            cfg: NoiseConfig = NoiseConfig(), depth: np.ndarray | None = None) -> np.ndarray:
    """Clean (T, 33, 2) pixels -> (T, 33, 3) noisy pixels + visibility, like MediaPipe's output.

    ``depth`` (T, 33), the joints' camera z, lowers the visibility (and precision) of joints
    hidden behind the body.
    """
    T = xy.shape[0]
    scale = body_scale_px(xy)[:, None, None]
    hidden = behind_body(depth) * rng.uniform(*cfg.self_occlusion) if depth is not None \
        else np.zeros((T, NUM_LANDMARKS))
    jitter = rng.uniform(*cfg.jitter) * (1.0 + 2.0 * hidden[..., None])
    noisy = xy + rng.normal(0.0, 1.0, xy.shape) * scale * jitter
    outliers = rng.random((T, NUM_LANDMARKS)) < cfg.outlier_rate
    noisy += outliers[..., None] * rng.normal(0.0, cfg.outlier_scale, xy.shape) * scale
    vis = np.clip(1.0 - np.abs(rng.normal(0.0, 0.06, (T, NUM_LANDMARKS))) - hidden, 0.0, 1.0)
    # occluded spans: low visibility and a less precise position
    for j in np.flatnonzero(rng.random(NUM_LANDMARKS) < cfg.occlusion_rate):
        a = rng.integers(T)
        b = min(T, a + rng.integers(5, 40))
        vis[a:b, j] = rng.uniform(0.0, 0.5, b - a)
        noisy[a:b, j] += rng.normal(0.0, 0.05, (b - a, 2)) * scale[a:b, 0]
    vis[rng.random((T, NUM_LANDMARKS)) < cfg.missing_rate] = 0.0
    # one draw from rng, as many as before outside guesses were modelled: views whose points all
    # stay in the image come out exactly as they did
    noisy, vis = _outside_guesses(xy, noisy, vis, size, scale[..., 0], rng.uniform(), cfg)
    out = np.concatenate([noisy, vis[..., None]], axis=-1)
    if rng.random() < cfg.swap_rate:                     # brief left/right label swap
        a, n = rng.integers(T), rng.integers(1, 4)
        out[a:a + n] = out[a:a + n][:, MIRROR]
    return out.astype(np.float32)


def _outside_guesses(xy, noisy, vis, size, scale, u: float, cfg: NoiseConfig):
    """Landmarks outside the image, as MediaPipe reports them: guessed, with low visibility.

    Measured on upper-body crops of tests/data/walk.mp4 against the full frame: the guesses
    are off by about 0.1 body scale just outside the image, 0.2 at one body scale out and
    0.4-0.5 further (median), with visibility mostly under 0.1 (median 0.03-0.07 with the
    cut above the hips), falling with distance.
    Modelled as a per-joint offset that holds over the sequence (plus a little jitter), of
    size ``outside_error[0] + outside_error[1] * distance`` (distance in body scales, capped at
    2.5), and visibility times a per-sequence factor in 0.05-0.5 times exp(-3 distance).
    ``u`` in [0, 1) is the sequence's random draw: it sets that factor and seeds the offsets.
    """
    w, h = size
    out_by = np.maximum.reduce([-xy[..., 0], xy[..., 0] - w, -xy[..., 1], xy[..., 1] - h])
    dist = np.maximum(out_by, 0.0) / np.maximum(scale, 1e-6)             # (T, 33) body scales
    outside = out_by > 0
    if not outside.any():
        return noisy, vis
    rng = np.random.default_rng(int(u * 2**53))
    a, b = cfg.outside_error
    sigma = (a + b * np.minimum(dist, 2.5)) * scale                      # pixels
    direction = rng.normal(0.0, 1.0, (1, xy.shape[1], 2)) + 0.3 * rng.normal(0.0, 1.0, xy.shape)
    noisy = np.where(outside[..., None], noisy + sigma[..., None] * direction, noisy)
    vis = np.where(outside, vis * (0.05 + 0.45 * u) * np.exp(-3.0 * dist), vis)
    return noisy, vis


def view(joints: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World (T, 33, 3) -> (camera-frame 3D (T, 33, 3), clean pixels (T, 33, 2))."""
    cam = camera.to_camera(joints)
    return cam.astype(np.float32), camera.project(cam).astype(np.float32)

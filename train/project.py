"""Virtual cameras and a detector-like noise model: 3D motion -> what MediaPipe would report.

World coordinates are the motion data's: metres, y up. Camera coordinates follow OpenCV:
x right, y down, z away from the camera. A camera is a static pinhole looking at the
person from a random distance, height, yaw and pitch, with a random field of view and image
size (landscape and portrait).
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
    # points outside the image are guessed by MediaPipe with low visibility
    w, h = size
    outside = (noisy[..., 0] < 0) | (noisy[..., 0] > w) | (noisy[..., 1] < 0) | (noisy[..., 1] > h)
    vis = np.where(outside, vis * rng.uniform(0.0, 0.4), vis)
    out = np.concatenate([noisy, vis[..., None]], axis=-1)
    if rng.random() < cfg.swap_rate:                     # brief left/right label swap
        a, n = rng.integers(T), rng.integers(1, 4)
        out[a:a + n] = out[a:a + n][:, MIRROR]
    return out.astype(np.float32)


def view(joints: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World (T, 33, 3) -> (camera-frame 3D (T, 33, 3), clean pixels (T, 33, 2))."""
    cam = camera.to_camera(joints)
    return cam.astype(np.float32), camera.project(cam).astype(np.float32)

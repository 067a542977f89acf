"""Normalization of the lifter's 2D input and 3D output, shared by training and the live loop.

2D input (version 2)
    keypoints (..., 33, 3) = x_px, y_px, visibility. Landmarks that are missing (NaN) or whose
    visibility is below ``MIN_VISIBILITY`` get x = y = 0 and visibility 0. The rest are
    centred on the 2D hip midpoint and divided by the body scale: the RMS distance of the
    visible body joints (of the 12) from that midpoint (independent of image size and of the
    person's distance to the camera). Output (..., 33, 3) = x, y, visibility.

    The hip midpoint is taken from the hips' reported positions whatever their visibility
    (version 1 required both hips visible): in front of a webcam the hips are often below the
    image, and MediaPipe still places them, with visibility near 0 (on an upper-body crop of
    tests/data/walk.mp4 a third of the frames had a hip under 0.05, and version 1 turned each
    of those frames into an empty input). Only a hip with no position (NaN) empties the frame.

3D output (version 1)
    root-relative pose (..., 33, 3) in metres, origin at the hip midpoint, camera-aligned axes
    (x right, y down, z away from the camera, OpenCV's convention). The network predicts it
    divided by ``OUTPUT_SCALE_M``; ``denormalize_3d`` undoes that and re-centres on the hips.
"""
from __future__ import annotations

import math

import numpy as np

from .skeleton import BODY_JOINTS, LEFT_HIP, NUM_LANDMARKS, RIGHT_HIP

NORMALIZATION_VERSION = 2
MIN_VISIBILITY = 0.05
OUTPUT_SCALE_M = 1.0
_MIN_SCALE_PX = 1e-3


def _check(points: np.ndarray, dims: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    if points.ndim < 2 or points.shape[-2:] != (NUM_LANDMARKS, dims):
        raise ValueError(f"expected (..., {NUM_LANDMARKS}, {dims}), got {points.shape}")
    return points


def normalize_2d(keypoints: np.ndarray) -> np.ndarray:
    """(..., 33, 3) pixels + visibility -> (..., 33, 3) normalized x, y + visibility.

    Frames whose hips or body scale cannot be computed (no person) come out all zero.
    A single frame with no NaN or infinity (what the live loop gets from MediaPipe) takes a
    shorter path with the same arithmetic (``_normalize_frame``): identical results.
    """
    kp = _check(keypoints, 3)
    if kp.ndim == 2 and np.isfinite(kp).all():
        return _normalize_frame(kp)
    return _normalize_any(kp)


def _normalize_any(kp: np.ndarray) -> np.ndarray:
    """``normalize_2d`` of float32 (..., 33, 3), any frames (NaN, infinity, batches)."""
    xy = kp[..., :2]
    vis = np.nan_to_num(kp[..., 2], nan=0.0)
    placed = np.isfinite(xy).all(axis=-1)                                       # (..., 33)
    valid = placed & (vis >= MIN_VISIBILITY)
    hips_ok = placed[..., LEFT_HIP] & placed[..., RIGHT_HIP]
    center = 0.5 * (np.where(hips_ok[..., None], xy[..., LEFT_HIP, :], 0.0)
                    + np.where(hips_ok[..., None], xy[..., RIGHT_HIP, :], 0.0))  # (..., 2)
    xy = np.where(valid[..., None], xy, 0.0)
    body = list(BODY_JOINTS)
    d2 = np.sum((xy[..., body, :] - center[..., None, :]) ** 2, axis=-1)         # (..., 12)
    n = valid[..., body].sum(axis=-1)
    scale = np.sqrt(np.sum(np.where(valid[..., body], d2, 0.0), axis=-1) / np.maximum(n, 1))
    ok = hips_ok & (n > 0) & (scale > _MIN_SCALE_PX)
    safe_scale = np.where(ok, scale, 1.0)
    keep = valid & ok[..., None]
    out = np.empty(kp.shape, dtype=np.float32)
    out[..., :2] = np.where(keep[..., None], (xy - center[..., None, :]) / safe_scale[..., None, None], 0.0)
    out[..., 2] = np.where(keep, vis, 0.0)
    return out


_BODY = np.array(BODY_JOINTS)


def _normalize_frame(kp: np.ndarray) -> np.ndarray:
    """``normalize_2d`` of one finite (33, 3) float32 frame, with fewer numpy calls.

    The same arithmetic on the same dtypes as the general path (float32 differences and
    sums in the same order, the scale in float64, the quotient rounded to float32), so the
    results are bit-identical; only the masking is done once, at the end.
    """
    valid = kp[:, 2] >= MIN_VISIBILITY                                          # (33,)
    out = np.zeros(kp.shape, dtype=np.float32)
    valid_body = valid[_BODY]
    if not valid_body.any():
        return out
    center = 0.5 * (kp[LEFT_HIP, :2] + kp[RIGHT_HIP, :2])                      # (2,) float32
    diff = kp[:, :2] - center                                                   # (33, 2) float32
    d2 = (diff[_BODY] ** 2).sum(axis=-1)                                        # (12,) float32
    total = np.where(valid_body, d2, np.float32(0.0)).sum()
    scale = np.float64(math.sqrt(float(total) / np.count_nonzero(valid_body)))  # as float32/int64
    if not scale > _MIN_SCALE_PX:
        return out
    out[:, :2] = diff / scale                                                   # float64 -> float32
    out[:, 2] = kp[:, 2]
    out[~valid] = 0.0
    return out


def normalize_3d(pose: np.ndarray) -> np.ndarray:
    """(..., 33, 3) metres (any origin) -> root-relative network target (..., 33, 3)."""
    p = _check(pose, 3)
    root = 0.5 * (p[..., LEFT_HIP, :] + p[..., RIGHT_HIP, :])
    return (p - root[..., None, :]) / OUTPUT_SCALE_M


def denormalize_3d(y: np.ndarray) -> np.ndarray:
    """Network output (..., 33, 3) -> root-relative pose in metres (..., 33, 3).

    The network predicts all 33 points, the hips included; the result is re-centred so that
    the hip midpoint is exactly the origin.
    """
    p = _check(y, 3) * np.float32(OUTPUT_SCALE_M)
    return p - 0.5 * (p[..., LEFT_HIP, :] + p[..., RIGHT_HIP, :])[..., None, :]

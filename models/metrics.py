"""Pose error metrics (pure numpy, shape-checked). Inputs are (..., J, 3) in metres; results in mm.

mpjpe        mean per-joint position error after aligning the roots (hip midpoint)
pa_mpjpe     the same after a similarity Procrustes alignment (rotation, translation, scale)
             per frame: the error of the pose shape alone
accel_error  mean per-joint error of the second finite difference over time (mm/frame^2),
             for (T, J, 3) sequences
"""
from __future__ import annotations

import numpy as np

from .skeleton import LEFT_HIP, RIGHT_HIP


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (..., J, 3): {pred.shape} vs {gt.shape}")
    return pred, gt


def root_align(pose: np.ndarray) -> np.ndarray:
    """Subtract the hip midpoint: (..., 33, 3) -> (..., 33, 3)."""
    return pose - 0.5 * (pose[..., LEFT_HIP, :] + pose[..., RIGHT_HIP, :])[..., None, :]


def per_joint_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(..., J, 3) x2 -> (..., J) Euclidean distances in mm, no alignment."""
    pred, gt = _pair(pred, gt)
    return 1000.0 * np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Root-aligned MPJPE in mm over all frames and joints (poses in the 33-landmark layout)."""
    pred, gt = _pair(pred, gt)
    return float(per_joint_error(root_align(pred), root_align(gt)).mean())


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each pred frame to gt: (N, J, 3) x2 -> aligned pred (N, J, 3)."""
    pred, gt = _pair(pred, gt)
    shape = pred.shape
    p = pred.reshape(-1, *shape[-2:])
    g = gt.reshape(-1, *shape[-2:])
    mp, mg = p.mean(axis=1, keepdims=True), g.mean(axis=1, keepdims=True)
    p0, g0 = p - mp, g - mg
    norm_p = np.sqrt((p0 ** 2).sum(axis=(1, 2), keepdims=True)) + 1e-12
    norm_g = np.sqrt((g0 ** 2).sum(axis=(1, 2), keepdims=True)) + 1e-12
    p0, g0 = p0 / norm_p, g0 / norm_g
    u, s, vt = np.linalg.svd(np.einsum("nji,njk->nik", p0, g0))
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))   # no reflections
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rot = np.einsum("nij,njk->nik", u, vt)
    scale = s.sum(axis=1)[:, None, None] * norm_g / norm_p
    aligned = scale * np.einsum("nji,nik->njk", p - mp, rot) + mg
    return aligned.reshape(shape)


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Procrustes-aligned MPJPE in mm."""
    pred, gt = _pair(pred, gt)
    return float(per_joint_error(procrustes_align(pred, gt), gt).mean())


def accel_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean acceleration error in mm/frame^2 for root-aligned (T, J, 3) sequences (T >= 3)."""
    pred, gt = _pair(pred, gt)
    if pred.ndim != 3 or pred.shape[0] < 3:
        raise ValueError(f"accel_error needs (T>=3, J, 3) sequences, got {pred.shape}")
    a_pred = np.diff(root_align(pred), n=2, axis=0)
    a_gt = np.diff(root_align(gt), n=2, axis=0)
    return float(1000.0 * np.linalg.norm(a_pred - a_gt, axis=-1).mean())

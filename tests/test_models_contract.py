"""The models/ contract: skeleton topology, normalization, manifest checks."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from posits.models import MODELS_DIR, manifest, skeleton
from posits.models.normalize import (NORMALIZATION_VERSION, denormalize_3d, normalize_2d,
                                     normalize_3d)


def test_skeleton_tables_consistent():
    assert len(skeleton.LANDMARK_NAMES) == 33
    assert all(0 <= a < 33 and 0 <= b < 33 and a != b for a, b in skeleton.BONES)
    # the mirror map is an involution that swaps left and right names
    assert np.array_equal(skeleton.MIRROR[skeleton.MIRROR], np.arange(33))
    for i, j in enumerate(skeleton.MIRROR):
        ni, nj = skeleton.LANDMARK_NAMES[i], skeleton.LANDMARK_NAMES[j]
        assert ni.replace("left", "X").replace("right", "left").replace("X", "right") == nj
    # mirroring maps bones onto bones
    bones = {frozenset(b) for b in skeleton.BONES}
    assert {frozenset((int(skeleton.MIRROR[a]), int(skeleton.MIRROR[b]))) for a, b in skeleton.BONES} == bones


def test_mediapipe_agrees_on_names():
    from mediapipe.tasks.python.vision import PoseLandmark
    for member in PoseLandmark:
        assert skeleton.LANDMARK_NAMES[member.value] == member.name.lower()


def test_normalize_2d_invariant_to_translation_and_scale(walk_poses):
    kp = next(p for p in walk_poses if p is not None).keypoints
    moved = kp.copy()
    moved[:, :2] = moved[:, :2] * 2.5 + np.array([100.0, -40.0])
    a, b = normalize_2d(kp), normalize_2d(moved)
    np.testing.assert_allclose(a, b, atol=1e-5)
    hips = 0.5 * (a[skeleton.LEFT_HIP, :2] + a[skeleton.RIGHT_HIP, :2])
    np.testing.assert_allclose(hips, 0.0, atol=1e-5)


def test_normalize_2d_missing_landmarks_and_empty_frames(walk_poses):
    kp = next(p for p in walk_poses if p is not None).keypoints.copy()
    kp[15] = np.nan                           # a missing wrist
    kp[16, 2] = 0.0                           # an invisible wrist
    empty = np.full((33, 3), np.nan, np.float32)
    out = normalize_2d(np.stack([kp, empty]))
    assert np.isfinite(out).all()
    assert out[0, 15].tolist() == [0, 0, 0] and out[0, 16].tolist() == [0, 0, 0]
    assert not out[1].any()


def test_normalize_2d_centres_on_hips_below_the_image(walk_poses):
    """In front of a webcam the hips are often below the image: MediaPipe still places them,
    with visibility near 0. The frame is centred on those positions (not emptied); the hips
    themselves are zeroed as unseen and the scale comes from the visible body joints."""
    kp = next(p for p in walk_poses if p is not None).keypoints.copy()
    kp[[skeleton.LEFT_HIP, skeleton.RIGHT_HIP], 2] = 0.01
    out = normalize_2d(kp)
    centre = 0.5 * (kp[skeleton.LEFT_HIP, :2] + kp[skeleton.RIGHT_HIP, :2])
    seen = [j for j in skeleton.BODY_JOINTS if kp[j, 2] >= 0.05]
    scale = np.sqrt(((kp[seen, :2] - centre) ** 2).sum(-1).mean())
    np.testing.assert_allclose(out[skeleton.LEFT_SHOULDER, :2], (kp[skeleton.LEFT_SHOULDER, :2] - centre) / scale,
                               rtol=1e-5)
    assert not out[[skeleton.LEFT_HIP, skeleton.RIGHT_HIP]].any()
    batch = normalize_2d(np.stack([kp, kp]))                 # the general path agrees
    np.testing.assert_array_equal(batch[0], out)
    kp[skeleton.LEFT_HIP, :2] = np.nan                       # a hip with no position: no frame
    assert not normalize_2d(kp).any()


def test_normalize_2d_single_frame_path_is_bit_identical(walk_poses):
    """One finite frame takes the short path: bit-identical to the general path, on real
    landmarks and on the cases that zero things (invisible joints, hips, degenerate scale)."""
    from posits.models.normalize import _normalize_any, _normalize_frame
    real = [p.keypoints for p in walk_poses if p is not None]
    rng = np.random.default_rng(0)
    frames = list(real)
    for i in range(300):
        kp = real[i % len(real)].copy()
        kp[:, :2] = kp[:, :2] * rng.uniform(0.01, 20.0) + rng.normal(0.0, 500.0, 2)
        kp[:, 2] = rng.uniform(0.0, 0.1, 33) if i % 3 == 0 else kp[:, 2]   # many below 0.05
        if i % 5 == 0:
            kp[rng.choice([skeleton.LEFT_HIP, skeleton.RIGHT_HIP]), 2] = 0.01  # a hip not seen
        if i % 7 == 0:
            kp[:, :2] = kp[skeleton.LEFT_HIP, :2]                               # zero body scale
        frames.append(kp)
    for kp in frames:
        fast, general = _normalize_frame(kp), _normalize_any(kp)
        assert fast.dtype == general.dtype == np.float32
        np.testing.assert_array_equal(fast, general)
        np.testing.assert_array_equal(normalize_2d(kp), general)
    kp = real[0].copy()
    kp[15] = np.nan                           # non-finite frames take the general path
    np.testing.assert_array_equal(normalize_2d(kp), _normalize_any(kp))


def test_3d_round_trip():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(4, 33, 3)).astype(np.float32) + 5.0
    rel = denormalize_3d(normalize_3d(pose))
    root = 0.5 * (pose[:, 23] + pose[:, 24])
    np.testing.assert_allclose(rel, pose - root[:, None], atol=1e-5)
    # a network output whose hips are off-centre comes back hip-centred
    off = denormalize_3d(pose)
    np.testing.assert_allclose(0.5 * (off[:, 23] + off[:, 24]), 0.0, atol=1e-5)


def test_shipped_manifest_matches_files():
    data = manifest.load()
    assert data["normalization_version"] == NORMALIZATION_VERSION
    for role in data["models"]:
        path, entry = manifest.resolve(role)
        assert path.is_file() and entry["sha256"] == manifest.sha256(path)


def test_manifest_refuses_mismatch(tmp_path):
    shutil.copy(MODELS_DIR / "manifest.json", tmp_path / "manifest.json")
    entry = manifest.load()["models"]["pose_landmarker"]
    (tmp_path / entry["file"]).write_bytes(b"a different file")
    with pytest.raises(manifest.ModelError, match="sha256"):
        manifest.resolve("pose_landmarker", tmp_path)
    with pytest.raises(manifest.ModelError, match="no 'lifter2' model"):
        manifest.resolve("lifter2", tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["manifest_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(manifest.ModelError, match="manifest_version"):
        manifest.load(tmp_path)
    with pytest.raises(manifest.ModelError, match="no manifest.json"):
        manifest.load(tmp_path / "nowhere")

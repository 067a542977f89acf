"""The 2D stage on real footage, with the shipped offline MediaPipe model."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from posits.models.manifest import ModelError
from posits.models.skeleton import INDEX, MIRROR
from posits.realtime.detect import PoseDetector
from conftest import NO_PERSON, read_frames


def _stack(poses):
    return np.stack([p.keypoints if p is not None else np.full((33, 3), np.nan, np.float32)
                     for p in poses])


def test_person_found_in_most_frames(walk_poses):
    found = sum(p is not None for p in walk_poses)
    assert found >= 0.9 * len(walk_poses), f"person in {found}/{len(walk_poses)} frames"


def test_landmarks_inside_frame(walk_frames, walk_poses):
    h, w = walk_frames[0].shape[:2]
    kp = _stack(walk_poses)
    vis = kp[..., 2] > 0.5
    x, y = kp[..., 0][vis], kp[..., 1][vis]
    assert vis.sum() > 1000
    # visible landmarks lie in the image (a few pixels of slack for MediaPipe's extrapolation)
    assert np.all((x > -5) & (x < w + 5) & (y > -5) & (y < h + 5))
    assert np.all((kp[..., 2] >= 0) & (kp[..., 2] <= 1) | np.isnan(kp[..., 2]))


def test_world_landmarks_kept(walk_poses):
    pose = next(p for p in walk_poses if p is not None)
    assert pose.world is not None and pose.world.shape == (33, 3)
    # MediaPipe world landmarks are metres around the hips: a person is 1-2.5 m tall
    height = pose.world[:, 1].max() - pose.world[:, 1].min()
    assert 0.8 < height < 2.5


def test_anatomy_upright(walk_poses):
    kp = _stack(walk_poses)
    y = kp[..., 1]                       # image y grows downwards
    shoulders = np.nanmean(y[:, [INDEX["left_shoulder"], INDEX["right_shoulder"]]], axis=1)
    hips = np.nanmean(y[:, [INDEX["left_hip"], INDEX["right_hip"]]], axis=1)
    ankles = np.nanmean(y[:, [INDEX["left_ankle"], INDEX["right_ankle"]]], axis=1)
    nose = y[:, INDEX["nose"]]
    ok = np.isfinite(hips)
    assert np.mean(nose[ok] < shoulders[ok]) > 0.95
    assert np.mean(shoulders[ok] < hips[ok]) > 0.95
    assert np.mean(hips[ok] < ankles[ok]) > 0.95


def test_left_right_do_not_swap(walk_poses):
    """Consecutive frames: a left/right pair must not trade labels.

    A swap is counted when exchanging the two labels fits the previous frame at least twice as
    well as keeping them, for a pair more than a tenth of the body height apart (closer pairs,
    e.g. knees passing each other, are ambiguous at pixel level).
    """
    kp = _stack(walk_poses)[..., :2]
    height = np.nanmedian(kp[:, :, 1].max(axis=1) - kp[:, :, 1].min(axis=1))
    pairs = [("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
             ("left_knee", "right_knee"), ("left_ankle", "right_ankle")]
    swaps = 0
    checked = 0
    for a, b in pairs:
        la, lb = kp[:, INDEX[a]], kp[:, INDEX[b]]
        keep = np.linalg.norm(la[1:] - la[:-1], axis=1) + np.linalg.norm(lb[1:] - lb[:-1], axis=1)
        swap = np.linalg.norm(la[1:] - lb[:-1], axis=1) + np.linalg.norm(lb[1:] - la[:-1], axis=1)
        apart = np.linalg.norm(la[1:] - lb[1:], axis=1) > 0.1 * height
        ok = np.isfinite(keep) & np.isfinite(swap)
        checked += ok.sum()
        swaps += np.sum((swap[ok] < 0.5 * keep[ok]) & apart[ok])
    assert checked > 400
    assert swaps <= 0.02 * checked, f"{swaps} left/right swaps in {checked} joint transitions"


def test_swap_guard_undoes_injected_swaps(walk_poses):
    """Real landmarks, a left/right swap injected on single frames (the whole body, the lower
    legs, the forearms): the guard gives back the labels as they were, world landmarks with
    them, and counts each fix; the frames around are left as they were."""
    from posits.realtime.detect import SWAP_PARTS, SwapGuard
    from posits.realtime.types import Pose2D
    track = walk_poses[10:80]
    assert all(p is not None for p in track)
    first = SwapGuard()
    ref = [first(p) for p in track]                 # the guarded real sequence
    corrupted = list(ref)
    for t, part in zip((20, 35, 50), SWAP_PARTS):
        perm = np.arange(33)
        idx = np.array(sorted(set(part) | {int(MIRROR[i]) for i in part}))
        perm[idx] = MIRROR[idx]
        corrupted[t] = Pose2D(keypoints=ref[t].keypoints[perm], world=ref[t].world[perm])
    guard = SwapGuard()
    out = [guard(p) for p in corrupted]
    for got, want in zip(out, ref):
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
        np.testing.assert_array_equal(got.world, want.world)
    assert guard.swaps_fixed == 3


def test_no_person_gives_nothing():
    frames = read_frames(NO_PERSON)
    assert len(frames) == 30
    with PoseDetector() as detector:
        results = [detector(f, i / 30.0) for i, f in enumerate(frames)]
    assert all(r is None for r in results)


def test_black_frame_gives_nothing():
    with PoseDetector() as detector:
        assert detector(np.zeros((240, 320, 3), np.uint8), 0.0) is None


def test_timestamps_need_not_increase(walk_frames):
    """VIDEO mode needs increasing timestamps; repeated times are nudged, not an error."""
    with PoseDetector() as detector:
        for _ in range(3):
            detector(walk_frames[0], 0.0)


def test_num_poses_configurable(walk_frames):
    with PoseDetector(num_poses=2) as detector:
        people = detector.detect(walk_frames[0], 0.0)
    assert 1 <= len(people) <= 2


@pytest.mark.parametrize("content, message", [
    (None, "not found"),                         # missing file
    (b"", "not a MediaPipe .task bundle"),       # empty file
    (b"hello, not a model", "not a MediaPipe .task bundle"),
    ("truncated", "truncated"),                  # first half of the real bundle
    ("wrong zip", "not a PoseLandmarker bundle"),
])
def test_bad_pose_model_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "model.task"
    if content == "truncated":
        from posits.models import manifest
        data = manifest.shipped_file("pose_landmarker").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "wrong zip":
        import zipfile
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("something.tflite", b"x")
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        PoseDetector(path)


def test_closes_cleanly_at_exit():
    """A detector left open must not hang or print a traceback at interpreter exit."""
    code = ("import numpy as np\n"
            "from posits.realtime.detect import PoseDetector\n"
            "d = PoseDetector()\n"
            "d(np.zeros((64, 64, 3), np.uint8), 0.0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr

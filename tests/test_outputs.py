"""realtime.outputs: video recording, pose export in both formats, and their failure modes."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import WALK, read_frames
from posits.realtime.outputs import OutputError, PoseExporter, Recorder, load_poses
from posits.realtime.types import Frame, Pose2D, Pose3D, Result


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """12 real 640x400 frames of tests/data/walk.mp4."""
    return read_frames(WALK, limit=12)


def make_results(n: int = 6, missing=(2, 4)) -> list[Result]:
    """n results with varied poses; frames in `missing` have no person. Frame 3 has no
    MediaPipe world landmarks."""
    rng = np.random.default_rng(0)
    image = np.zeros((4, 4, 3), np.uint8)
    out = []
    for i in range(n):
        frame = Frame(index=10 + i, t_capture=100.0 + i, t_source=i / 30.0, image=image)
        if i in missing:
            out.append(Result(frame, None, None))
            continue
        kp = np.column_stack([rng.uniform(0, 640, 33), rng.uniform(0, 400, 33),
                              rng.uniform(0, 1, 33)]).astype(np.float32)
        world = None if i == 3 else rng.normal(0, 0.5, (33, 3)).astype(np.float32)
        xyz = rng.normal(0, 0.5, (33, 3)).astype(np.float32)
        out.append(Result(frame, Pose2D(kp, world), Pose3D(xyz), {"detect": 9.0}))
    return out


def expected_arrays(results: list[Result]) -> dict[str, np.ndarray]:
    nan = np.full((33, 3), np.nan, np.float32)
    return {
        "frame": np.array([r.frame.index for r in results]),
        "time_s": np.array([r.frame.t_source for r in results]),
        "landmarks_2d": np.stack([nan if r.pose2d is None else r.pose2d.keypoints
                                  for r in results]),
        "pose_3d": np.stack([nan if r.pose3d is None else r.pose3d.xyz for r in results]),
        "world_mediapipe": np.stack([nan if r.pose2d is None or r.pose2d.world is None
                                     else r.pose2d.world for r in results]),
    }


# --- Recorder ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, codecs", [
    ("out.mp4", {"mp4v", "fmp4"}),  # MPEG-4 part 2 (FFmpeg reads it back as FMP4); no H.264
    ("out.avi", {"mjpg"}),
    ("OUT.AVI", {"mjpg"}),          # extension case does not matter
])
def test_recorder_writes_a_video_that_reopens(tmp_path, frames, name, codecs):
    path = tmp_path / name
    with Recorder(path, 30, (640, 400)) as rec:
        for f in frames:
            rec.write(f)
        rec.write(cv2.resize(frames[0], (320, 200)))  # other sizes are resized
        assert rec.frames_written == len(frames) + 1
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    count = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (400, 640, 3)
        if count == 0:  # lossy, but the same picture
            assert np.abs(img.astype(int) - frames[0].astype(int)).mean() < 12
        count += 1
    assert count == len(frames) + 1
    codec = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    assert codec.lower() in codecs
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30, abs=0.01)
    cap.release()


@pytest.mark.parametrize("name", ["out.mkv", "out.gif", "out"])
def test_recorder_rejects_other_extensions(tmp_path, name):
    with pytest.raises(OutputError, match="unsupported extension"):
        Recorder(tmp_path / name, 30, (64, 48))


def test_recorder_rejects_missing_dir_and_directory_path(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        Recorder(tmp_path / "nope" / "out.mp4", 30, (64, 48))
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        Recorder(tmp_path / "dir.mp4", 30, (64, 48))


def test_outputs_reject_read_only_dir(tmp_path):
    """A read-only folder (mode 0500; as root, which ignores modes, a read-only tmpfs)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            with mounted_tmpfs("ro,size=64k") as ro_mount:
                check_unwritable(ro_mount)
        else:
            check_unwritable(ro)
    finally:
        ro.chmod(0o700)


def check_unwritable(folder: Path) -> None:
    with pytest.raises(OutputError, match="not writable"):
        Recorder(folder / "out.mp4", 30, (64, 48))
    for name in ("p.npz", "p.jsonl"):
        with pytest.raises(OutputError, match="not writable"):
            PoseExporter(folder / name)


def test_recorder_rejects_bad_frames(tmp_path):
    with Recorder(tmp_path / "out.avi", 10, (64, 48)) as rec:
        with pytest.raises(ValueError):
            rec.write(np.zeros((48, 64), np.uint8))
    with pytest.raises(OutputError, match="closed"):
        rec.write(np.zeros((48, 64, 3), np.uint8))


# --- PoseExporter ------------------------------------------------------------------------------

def test_npz_round_trip_is_exact_with_nan_for_missing(tmp_path):
    results = make_results()
    path = tmp_path / "poses.npz"
    with PoseExporter(path) as exporter:
        for r in results:
            exporter.add(r)
        assert not path.exists(), "npz appears only at close"
    loaded = load_poses(path)
    expected = expected_arrays(results)
    assert set(np.load(path).files) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)
    assert loaded["landmarks_2d"].dtype == np.float32 and loaded["frame"].dtype == np.int64
    assert np.isnan(loaded["pose_3d"][2]).all() and np.isnan(loaded["world_mediapipe"][3]).all()
    assert not list(tmp_path.glob("*.tmp")), "temporary file removed"


def test_jsonl_round_trip_rounds_to_5_decimals_with_null_for_missing(tmp_path):
    results = make_results()
    path = tmp_path / "poses.jsonl"
    with PoseExporter(path) as exporter:
        for k, r in enumerate(results):
            exporter.add(r)
            # streamed: every added frame is already a complete line on disk
            assert len(path.read_text().splitlines()) == k + 1
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert set(records[0]) == {"frame", "time_s", "landmarks_2d", "pose_3d", "world_mediapipe"}
    assert records[2]["landmarks_2d"] is None and records[2]["pose_3d"] is None
    assert records[3]["world_mediapipe"] is None and records[3]["pose_3d"] is not None
    assert len(records[0]["pose_3d"]) == 33 and len(records[0]["pose_3d"][0]) == 3
    loaded = load_poses(path)
    for name, want in expected_arrays(results).items():
        if want.dtype == np.float32:
            want = np.round(want.astype(np.float64), 5).astype(np.float32)
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)


def test_jsonl_non_finite_values_become_null(tmp_path):
    r = make_results(1, missing=())[0]
    xyz = r.pose3d.xyz.copy()
    xyz[15, 0] = np.nan
    r = Result(r.frame, r.pose2d, Pose3D(xyz))
    path = tmp_path / "p.jsonl"
    with PoseExporter(path) as exporter:
        exporter.add(r)
    assert json.loads(path.read_text())["pose_3d"][15][0] is None  # valid JSON, no NaN token
    loaded = load_poses(path)
    assert np.isnan(loaded["pose_3d"][0, 15, 0]) and np.isfinite(loaded["pose_3d"][0, 15, 1])


@pytest.mark.parametrize("ext", [".npz", ".jsonl"])
def test_exporter_is_finalized_when_the_loop_raises(tmp_path, ext):
    path = tmp_path / f"poses{ext}"
    results = make_results()
    with pytest.raises(KeyboardInterrupt):
        with PoseExporter(path) as exporter:
            for r in results[:3]:
                exporter.add(r)
            raise KeyboardInterrupt
    loaded = load_poses(path)
    np.testing.assert_array_equal(loaded["frame"], [10, 11, 12])
    assert loaded["pose_3d"].shape == (3, 33, 3)


def test_empty_exports_load(tmp_path):
    for ext in (".npz", ".jsonl"):
        with PoseExporter(tmp_path / f"e{ext}"):
            pass
        loaded = load_poses(tmp_path / f"e{ext}")
        assert loaded["frame"].shape == (0,) and loaded["pose_3d"].shape == (0, 33, 3)


def test_jsonl_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    with PoseExporter(path) as exporter:
        for r in make_results(3, missing=()):
            exporter.add(r)
    text = path.read_text()
    path.write_text(text + text.splitlines()[0][:50])  # a run killed mid-line
    assert load_poses(path)["frame"].tolist() == [10, 11, 12]


@pytest.mark.parametrize("name", ["p.csv", "p.json", "p"])
def test_exporter_rejects_other_extensions(tmp_path, name):
    with pytest.raises(OutputError, match="unsupported extension"):
        PoseExporter(tmp_path / name)


@pytest.mark.parametrize("ext", [".npz", ".jsonl"])
def test_exporter_rejects_missing_dir(tmp_path, ext):
    with pytest.raises(OutputError, match="does not exist"):
        PoseExporter(tmp_path / "missing" / f"p{ext}")


def test_jsonl_full_disk_raises_output_error(tmp_path):
    """/dev/full fails every write with ENOSPC, like a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full not available")
    path = tmp_path / "full.jsonl"
    path.symlink_to("/dev/full")
    exporter = PoseExporter(path)
    with pytest.raises(OutputError, match="No space left on device"):
        exporter.add(make_results(1, missing=())[0])
    with pytest.raises(OutputError):
        exporter.add(make_results(1, missing=())[0])  # stays failed
    exporter.close()  # no second error when closing after the failure


@contextlib.contextmanager
def mounted_tmpfs(options: str):
    """Mount a tmpfs with `options` on a fresh folder, or skip when mounting is not permitted."""
    mount_point = Path("/tmp") / f"posits-test-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        proc = subprocess.CompletedProcess([], 1, "", "no mount command")
    if proc.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


@pytest.fixture
def tiny_tmpfs():
    """A 64 KiB tmpfs: a disk that fills up quickly."""
    with mounted_tmpfs("size=64k") as mount_point:
        yield mount_point


def test_npz_on_full_disk_raises_and_leaves_no_partial_file(tiny_tmpfs):
    path = tiny_tmpfs / "poses.npz"
    rng = np.random.default_rng(1)
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(OutputError, match="No space left on device"):
        with PoseExporter(path) as exporter:
            for i in range(300):  # ~300 * 3 * 400 B of random floats: does not fit in 64 KiB
                frame = Frame(i, 0.0, i / 30, image)
                pose2d = Pose2D(rng.random((33, 3), dtype=np.float32),
                                rng.random((33, 3), dtype=np.float32))
                exporter.add(Result(frame, pose2d, Pose3D(rng.random((33, 3),
                                                                     dtype=np.float32))))
    assert not path.exists(), "no truncated npz"
    assert list(tiny_tmpfs.iterdir()) == [], "temporary file removed"


def test_jsonl_on_full_disk_raises(tiny_tmpfs):
    path = tiny_tmpfs / "poses.jsonl"
    results = make_results(1, missing=())
    with pytest.raises(OutputError, match="No space left on device"):
        with PoseExporter(path) as exporter:
            for _ in range(1000):
                exporter.add(results[0])


def test_recorder_on_full_disk_raises(tiny_tmpfs, frames):
    with pytest.raises(OutputError, match="no space left"):
        with Recorder(tiny_tmpfs / "out.avi", 30, (640, 400)) as rec:
            for _ in range(20):
                for f in frames:
                    rec.write(f)

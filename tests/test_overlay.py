"""realtime.overlay: skeleton colours by side, dimming, the no-person label, the HUD box."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import WALK, read_frames
from posits.models import skeleton
from posits.realtime import overlay
from posits.realtime.types import Pose2D
from posits.realtime.view3d import example_pose


def projected_pose(width: int, height: int, visibility: float = 0.95) -> Pose2D:
    """The example standing pose projected by a pinhole camera 3 m away, filling ~70% height."""
    xyz = example_pose().xyz.astype(np.float64)
    f = 0.7 * height * 3.0 / 1.6
    x = width / 2 + f * xyz[:, 0] / (xyz[:, 2] + 3.0)
    y = height / 2 + f * (xyz[:, 1] + 0.1) / (xyz[:, 2] + 3.0)
    kp = np.stack([x, y, np.full(33, visibility)], axis=1).astype(np.float32)
    return Pose2D(kp)


def color_mask(image: np.ndarray, bgr, tol: int = 12) -> np.ndarray:
    return np.all(np.abs(image.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=-1)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A real 640x400 frame from tests/data/walk.mp4."""
    return read_frames(WALK, limit=1)[0]


def test_annotate_returns_new_image_and_keeps_input(frame):
    before = frame.copy()
    out = overlay.annotate(frame, projected_pose(640, 400), ["FPS 30.0"])
    assert out is not frame and out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frame, before)
    assert np.any(out != frame)


def test_overlay_draws_what_annotate_draws_into_its_own_buffer(frame):
    """The live loop's Overlay: annotate's picture, in the same memory every frame."""
    draw = overlay.Overlay()
    before = frame.copy()
    pose = projected_pose(640, 400, visibility=0.3)    # dimmed joints use the scratch layer too
    first = draw(frame, pose, ["FPS 30.0"])
    np.testing.assert_array_equal(first, overlay.annotate(frame, pose, ["FPS 30.0"]))
    np.testing.assert_array_equal(frame, before)
    second = draw(frame, None, ["FPS 29.0"])
    assert second is first
    np.testing.assert_array_equal(second, overlay.annotate(frame, None, ["FPS 29.0"]))
    assert draw(frame[:200], None).shape == (200, 640, 3)


def test_left_and_right_sides_get_their_colours_on_the_right_image_side():
    black = np.zeros((480, 640, 3), np.uint8)
    out = overlay.annotate(black, projected_pose(640, 480))
    left, right = color_mask(out, overlay.LEFT_COLOR), color_mask(out, overlay.RIGHT_COLOR)
    center = color_mask(out, overlay.CENTER_COLOR)
    assert left.sum() > 200 and right.sum() > 200 and center.sum() > 50
    # The subject faces the camera: their left side is on the image's right.
    assert np.nonzero(left)[1].mean() > 320 > np.nonzero(right)[1].mean()


def test_low_visibility_is_dimmed_and_thinner():
    black = np.zeros((480, 640, 3), np.uint8)
    strong = overlay.annotate(black, projected_pose(640, 480, visibility=0.95))
    weak = overlay.annotate(black, projected_pose(640, 480, visibility=0.1))
    assert weak.any(), "low-visibility joints are still drawn"
    assert weak.max() < 0.6 * strong.max()  # blended toward the black background
    assert np.count_nonzero(weak.any(-1)) < 0.7 * np.count_nonzero(strong.any(-1))  # thinner


def test_nan_and_far_off_points_do_not_break_drawing():
    kp = projected_pose(640, 480).keypoints.copy()
    kp[skeleton.INDEX["left_wrist"]] = np.nan
    kp[skeleton.INDEX["right_ankle"], :2] = (1e9, -1e9)
    out = overlay.annotate(np.zeros((480, 640, 3), np.uint8), Pose2D(kp))
    assert color_mask(out, overlay.LEFT_COLOR).sum() > 100


def test_no_person_label_is_drawn(frame):
    out = overlay.annotate(frame, None)
    red = color_mask(out, overlay.NO_PERSON_COLOR, tol=40)
    assert red.sum() > 100
    rows, cols = np.nonzero(red)
    assert abs(cols.mean() - 320) < 60 and abs(rows.mean() - 200) < 60  # in the middle


@pytest.mark.parametrize("size", [(320, 240), (640, 400), (1920, 1080)])
def test_hud_box_is_dark_in_the_top_left_and_scales_with_image(size):
    w, h = size
    grey = np.full((h, w, 3), 200, np.uint8)
    lines = overlay.format_hud(29.97, 41.2, {"detect": 9.1, "lift": 0.12, "lstm": 0.03}, 3)
    out = overlay.annotate(grey, None, lines)
    dark = (out.max(-1) < 120).astype(np.uint8)
    _, labels = cv2.connectedComponents(dark)
    corner = labels[int(0.02 * h) + 3, int(0.02 * w) + 3]
    assert corner != 0, "a dark HUD box starts near the top-left corner"
    rows, cols = np.nonzero(labels == corner)
    assert rows.max() < h / 2 and cols.max() < 0.75 * w
    box = out[rows.min():rows.max(), cols.min():cols.max()]
    assert np.all(box > 240, axis=-1).sum() > 0.002 * box.shape[0] * box.shape[1]  # text
    assert 0.08 * h < rows.max() - rows.min() < 0.35 * h  # font grows with the image


def test_format_hud_lines():
    lines = overlay.format_hud(29.97, 41.2, {"detect": 9.14, "lift": 0.12}, 3)
    assert lines == ["FPS 30.0  latency 41 ms", "detect 9.1  lift 0.1 ms", "dropped 3"]
    assert overlay.format_hud(10, 5, {}, 0) == ["FPS 10.0  latency 5 ms", "dropped 0"]


def test_bad_image_is_rejected():
    with pytest.raises(ValueError):
        overlay.annotate(np.zeros((10, 10), np.uint8), None)
    with pytest.raises(ValueError):
        overlay.annotate(np.zeros((10, 10, 3), np.float32), None)


def test_real_landmarks_on_real_frame(walk_frames, walk_poses):
    """MediaPipe's landmarks on walk.mp4 draw both sides' colours near the detected person."""
    i = next(k for k, p in enumerate(walk_poses) if p is not None)
    out = overlay.annotate(walk_frames[i], walk_poses[i])
    changed = np.any(out != walk_frames[i], axis=-1)
    kp = walk_poses[i].keypoints
    x0, x1 = kp[:, 0].min() - 20, kp[:, 0].max() + 20
    cols = np.nonzero(changed)[1]
    assert np.mean((cols >= x0) & (cols <= x1)) > 0.95
    assert color_mask(out, overlay.LEFT_COLOR, tol=30).sum() > 30
    assert color_mask(out, overlay.RIGHT_COLOR, tol=30).sum() > 30

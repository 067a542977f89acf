"""2D drawing on video frames with OpenCV: the MediaPipe skeleton and a HUD box.

:func:`annotate` returns a new image and never modifies its input, so it is safe to call on a
frame that another stage (or the recorder) still holds. :class:`Overlay` draws the same picture
into image buffers it keeps from one frame to the next (the live loop: no new frame-sized
array per frame).

Colours (BGR) follow the subject's own sides, as MediaPipe names them: LEFT_COLOR for the
subject's left, RIGHT_COLOR for the right, CENTER_COLOR for the face midline and the bones that
cross the body (shoulders, hips). A facing subject's left side appears on the image's right.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from posits.models import skeleton
from posits.realtime.buffers import Buffers
from posits.realtime.types import Pose2D

log = logging.getLogger(__name__)

LEFT_COLOR: tuple[int, int, int] = (255, 160, 0)     # BGR, azure blue: subject's left
RIGHT_COLOR: tuple[int, int, int] = (0, 120, 255)    # BGR, orange: subject's right
CENTER_COLOR: tuple[int, int, int] = (230, 230, 230)  # BGR, light grey: midline
NO_PERSON_COLOR: tuple[int, int, int] = (0, 0, 255)   # BGR, red label text
HUD_TEXT_COLOR: tuple[int, int, int] = (255, 255, 255)

#: A joint (or bone, by its weaker end) below this visibility is drawn dimmed and thinner.
VISIBILITY_THRESHOLD = 0.5
#: Opacity of dimmed joints and bones (0 = invisible, 1 = like confident ones).
DIM_ALPHA = 0.35
#: Opacity of the dark box behind HUD text and labels.
BOX_ALPHA = 0.6

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SIDE_COLOR = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}


def _bone_side(a: int, b: int) -> str:
    """"left"/"right" when both ends are on that side, else "center"."""
    sa, sb = skeleton.SIDE[a], skeleton.SIDE[b]
    return sa if sa == sb else "center"


#: Colour of each bone in skeleton.BONES, and of each landmark.
BONE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    _SIDE_COLOR[_bone_side(a, b)] for a, b in skeleton.BONES)
JOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(_SIDE_COLOR[s] for s in skeleton.SIDE)


def _scale(image: np.ndarray) -> float:
    """Drawing scale: 1.0 for a 640x480 frame, proportional to the shorter side otherwise."""
    return min(image.shape[:2]) / 480.0


def format_hud(fps: float, latency_ms: float, stage_ms: Mapping[str, float],
               dropped: int) -> list[str]:
    """HUD text lines for :func:`annotate`.

    fps: processed frames per second; latency_ms: capture-to-display latency;
    stage_ms: milliseconds per stage in pipeline order, e.g. {"detect": 9.1, "lift": 0.1};
    dropped: frames skipped so far. Returns e.g.
    ["FPS 29.9  latency 41 ms", "detect 9.1  lift 0.1 ms", "dropped 3"].
    """
    lines = [f"FPS {fps:.1f}  latency {latency_ms:.0f} ms"]
    if stage_ms:
        lines.append("  ".join(f"{name} {ms:.1f}" for name, ms in stage_ms.items()) + " ms")
    lines.append(f"dropped {int(dropped)}")
    return lines


def annotate(image_bgr: np.ndarray, pose2d: Pose2D | None,
             hud_lines: Sequence[str] = ()) -> np.ndarray:
    """Draw the skeleton and a HUD on a copy of `image_bgr`.

    image_bgr: (H, W, 3) uint8 BGR; not modified.
    pose2d: landmarks in pixels of this image, or None -> a "no person" label is drawn.
    hud_lines: text lines drawn in a dark box in the top-left corner (see :func:`format_hud`).
    Returns a new (H, W, 3) uint8 BGR image.
    """
    return Overlay()(image_bgr, pose2d, hud_lines)


class Overlay:
    """:func:`annotate` for a stream of frames, drawing into buffers kept between calls.

    ``overlay(image_bgr, pose2d, hud_lines)`` returns the annotated image in the overlay's own
    buffer: the next call overwrites it (copy it to keep it). The input is not modified.
    """

    def __init__(self):
        self._buffers = Buffers()     # "out": the annotated image, "layer": the dimmed parts

    def __call__(self, image_bgr: np.ndarray, pose2d: Pose2D | None,
                 hud_lines: Sequence[str] = ()) -> np.ndarray:
        image_bgr = np.asarray(image_bgr)
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"annotate expects an (H, W, 3) uint8 BGR image, got "
                             f"{image_bgr.shape} {image_bgr.dtype}")
        out = self._buffers.get("out", image_bgr.shape)
        np.copyto(out, image_bgr)
        scale = _scale(out)
        if pose2d is None:
            _draw_label(out, "NO PERSON", scale)
        else:
            _draw_skeleton(out, pose2d.keypoints, scale, self._buffers.get("layer", out.shape))
        if hud_lines:
            _draw_text_box(out, list(hud_lines), scale, corner="top-left")
        return out


def _draw_skeleton(out: np.ndarray, keypoints: np.ndarray, scale: float,
                   layer: np.ndarray) -> None:
    """Draw bones and joints in place. keypoints: (33, 3) x_px, y_px, visibility.
    ``layer``: an array like ``out`` (its content is overwritten) for the dimmed parts."""
    kp = np.asarray(keypoints, dtype=np.float64)
    valid = np.all(np.isfinite(kp), axis=1)
    h, w = out.shape[:2]
    # Far-off points would overflow cv2's int coordinates; cv2 clips lines to the image itself.
    margin = 4 * max(h, w)
    xy = np.round(np.clip(np.nan_to_num(kp[:, :2]), -margin, margin)).astype(np.int32)
    strong = valid & (kp[:, 2] >= VISIBILITY_THRESHOLD)

    thick = max(1, round(3 * scale))
    thin = max(1, thick // 2)
    radius = max(2, round(4 * scale))
    bones = [(i, a, b) for i, (a, b) in enumerate(skeleton.BONES) if valid[a] and valid[b]]

    weak_bones = [bone for bone in bones if not (strong[bone[1]] and strong[bone[2]])]
    weak_joints = np.flatnonzero(valid & ~strong)
    if weak_bones or weak_joints.size:
        np.copyto(layer, out)
        for i, a, b in weak_bones:
            cv2.line(layer, tuple(xy[a]), tuple(xy[b]), BONE_COLORS[i], thin, cv2.LINE_AA)
        for j in weak_joints:
            cv2.circle(layer, tuple(xy[j]), max(1, radius - 1), JOINT_COLORS[j], -1, cv2.LINE_AA)
        cv2.addWeighted(layer, DIM_ALPHA, out, 1.0 - DIM_ALPHA, 0.0, dst=out)

    for i, a, b in bones:
        if strong[a] and strong[b]:
            cv2.line(out, tuple(xy[a]), tuple(xy[b]), BONE_COLORS[i], thick, cv2.LINE_AA)
    for j in np.flatnonzero(strong):
        cv2.circle(out, tuple(xy[j]), radius, JOINT_COLORS[j], -1, cv2.LINE_AA)
        cv2.circle(out, tuple(xy[j]), radius, (0, 0, 0), 1, cv2.LINE_AA)


def _text_layout(lines: list[str], scale: float, max_width: int):
    """(font_scale, thickness, line_h, baseline, pad, box_w): widest line fits in max_width px."""
    font_scale, thickness = 0.55 * scale, max(1, round(1.2 * scale))
    pad = max(3, round(6 * scale))
    widest = max(cv2.getTextSize(t, _FONT, font_scale, thickness)[0][0] for t in lines)
    if widest + 2 * pad > max_width:  # shrink to fit a narrow frame
        shrink = max_width / (widest + 2 * pad)
        font_scale, thickness = font_scale * shrink, max(1, round(thickness * shrink))
        widest = max(cv2.getTextSize(t, _FONT, font_scale, thickness)[0][0] for t in lines)
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, font_scale, thickness)
    line_h = text_h + baseline + max(2, round(4 * scale))
    return font_scale, thickness, line_h, baseline, pad, widest + 2 * pad


def _draw_text_box(out: np.ndarray, lines: list[str], scale: float, corner: str,
                   color: tuple[int, int, int] = HUD_TEXT_COLOR) -> None:
    """Draw `lines` in place in a translucent dark box at `corner` ("top-left" or "center")."""
    h, w = out.shape[:2]
    font_scale, thickness, line_h, baseline, pad, box_w = _text_layout(lines, scale, w - 4)
    box_h = line_h * len(lines) + pad
    if corner == "top-left":
        x0 = y0 = max(2, round(8 * scale))
    else:  # "center"
        x0, y0 = max(0, (w - box_w) // 2), max(0, (h - box_h) // 2)
    x1, y1 = min(w, x0 + box_w), min(h, y0 + box_h)
    roi = out[y0:y1, x0:x1]
    cv2.convertScaleAbs(roi, dst=roi, alpha=1.0 - BOX_ALPHA)   # darken in place
    for k, text in enumerate(lines):
        baseline_y = y0 + pad // 2 + (k + 1) * line_h - baseline
        cv2.putText(out, text, (x0 + pad, baseline_y), _FONT, font_scale, color, thickness,
                    cv2.LINE_AA)


def _draw_label(out: np.ndarray, text: str, scale: float) -> None:
    """A large label in the middle of the image, e.g. "NO PERSON"."""
    _draw_text_box(out, [text], scale * 1.6, corner="center", color=NO_PERSON_COLOR)

"""Shared fixtures: the real clips under tests/data and 2D landmarks detected on them."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posits.realtime.capture import VideoSource

DATA = Path(__file__).resolve().parent / "data"
WALK = DATA / "walk.mp4"            # real footage: a man standing, raising his arms, walking
NO_PERSON = DATA / "no_person.mp4"  # real footage of the same scene with nobody in it


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


class UnpluggedVideo(VideoSource):
    """Fault injection on a real clip: the 6th read raises, as a failing device would."""

    def read(self):
        frame = super().read()
        if frame is not None and frame.index == 5:
            raise OSError("device unplugged")
        return frame


@pytest.fixture(scope="session")
def walk_frames() -> list[np.ndarray]:
    return read_frames(WALK)


@pytest.fixture(scope="session")
def walk_poses(walk_frames):
    """Pose2D | None per frame of walk.mp4, from the shipped MediaPipe model."""
    from posits.realtime.detect import PoseDetector
    with PoseDetector() as detector:
        return [detector(frame, i / 30.0) for i, frame in enumerate(walk_frames)]

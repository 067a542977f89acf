"""Typed values that move between the stages of the live loop (frozen dataclasses)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posits.models.skeleton import NUM_LANDMARKS


@dataclass(frozen=True)
class Frame:
    """One captured image.

    index: 0-based frame number from the source (video: position in the file).
    t_capture: ``time.monotonic()`` when the frame was read.
    t_source: presentation time in seconds (video: index / fps; camera: since the first frame).
    image: (H, W, 3) uint8 BGR.
    """

    index: int
    t_capture: float
    t_source: float
    image: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        h, w = self.image.shape[:2]
        return w, h


@dataclass(frozen=True)
class Pose2D:
    """MediaPipe's 33 landmarks for one person in one frame.

    keypoints: (33, 3) float32, x and y in pixels, visibility in [0, 1].
    world: (33, 3) float32, MediaPipe's own world landmarks in metres (hip-centred,
        x right, y down, z away from the camera), kept for comparison.
    """

    keypoints: np.ndarray
    world: np.ndarray | None = None

    def __post_init__(self):
        if self.keypoints.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"Pose2D.keypoints must be (33, 3), got {self.keypoints.shape}")
        if self.world is not None and self.world.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"Pose2D.world must be (33, 3), got {self.world.shape}")


@dataclass(frozen=True)
class Pose3D:
    """Root-relative 3D pose: (33, 3) float32 metres, origin at the hip midpoint,
    camera-aligned axes (x right, y down, z away from the camera)."""

    xyz: np.ndarray

    def __post_init__(self):
        if self.xyz.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"Pose3D.xyz must be (33, 3), got {self.xyz.shape}")


@dataclass(frozen=True)
class Result:
    """Everything the outputs and the view need about one processed frame.

    pose2d / pose3d are None when no person was found.
    timings: milliseconds per stage, e.g. {"capture": .., "detect": .., "lift": .., "lstm": ..}.
    """

    frame: Frame
    pose2d: Pose2D | None
    pose3d: Pose3D | None
    timings: dict[str, float] = field(default_factory=dict)

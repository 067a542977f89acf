"""Work buffers a stage keeps from one frame to the next.

The live loop handles frames of one size for a whole run; drawing, converting and resizing
into the same memory every frame (OpenCV's ``dst=``) instead of a new frame-sized array each
time keeps a long run's heap from fragmenting across threads (see the README's memory notes).
"""
from __future__ import annotations

import numpy as np


class Buffers:
    """Named uint8 arrays, made on first use and whenever the requested shape changes.

    ``buffers.get("rgb", shape)`` returns the same array while ``shape`` stays the same; its
    content is whatever was written last (the caller overwrites it). One owner thread.
    """

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != tuple(shape):
            array = self._arrays[name] = np.empty(shape, np.uint8)
        return array

"""Ground truth of one frame, whatever its origin (the generator, a label file)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FrameTruth:
    """What is in one frame.

    ``boxes`` (``[N, 4]`` float32, x1, y1, x2, y2 in pixels) with one class name each in
    ``classes``. A label file may instead give only a frame-level ``label`` (one class name) or
    a ``count``; then ``boxes`` is empty and ``has_boxes`` is False.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    classes: tuple[str, ...] = ()
    label: str | None = None
    count: int | None = None

    @property
    def has_boxes(self) -> bool:
        return self.label is None and self.count is None

    def areas(self) -> np.ndarray:
        b = self.boxes
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def selected(self, classes: Iterable[str], min_area: float = 0.0) -> np.ndarray:
        """Boolean mask of the boxes of ``classes`` with area at least ``min_area``."""
        wanted = set(classes)
        keep = np.array([c in wanted for c in self.classes], bool)
        if min_area > 0:
            keep &= self.areas() >= min_area
        return keep


@dataclass(frozen=True)
class Clip:
    """A source's frames (``[N, H, W, 3]`` uint8 RGB), one truth per frame, and its rate.

    ``slots[i]`` places frame ``i`` in time, at ``slots[i] / fps`` seconds; it is ``i`` unless
    frames of a video could not be decoded.
    """

    frames: np.ndarray
    truths: list[FrameTruth]
    fps: float
    slots: np.ndarray

    def __len__(self) -> int:
        return len(self.truths)

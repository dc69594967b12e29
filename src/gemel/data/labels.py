"""Label files: the ground truth that goes with a video (JSON lines).

The first line is a header, every further line labels one frame (blank lines are ignored)::

    {"format": "gemel-labels", "version": 1, "fps": 10.0}
    {"frame": 0, "boxes": [[12.0, 30.5, 40.0, 52.0, "car"], [60, 41, 66, 60, "person"]]}
    {"frame": 1, "class": "car"}
    {"frame": 2, "count": 3}

``frame`` is the index of the frame in the video sampled at the header's ``fps`` (frame ``i``
is at ``i / fps`` seconds). A frame line holds exactly one of: ``boxes`` (x1, y1, x2, y2 in
pixels of the sampled frame, then the class name; ``[]`` for an empty frame), ``class`` (one
class name for the whole frame) or ``count`` (how many objects of the query's classes). Tasks
derive what they need: presence and dominant class work from all three kinds of lines, count
buckets from boxes or counts. Every frame appears at most once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.io import atomic_path

FORMAT = "gemel-labels"
VERSION = 1


@dataclass(frozen=True)
class LabelFile:
    """A parsed label file: the sampling rate and each labelled frame's truth."""

    path: Path
    fps: float
    truths: dict[int, FrameTruth]

    def for_frames(self, frames: Sequence[int]) -> list[FrameTruth]:
        """The truths of the given frame indices; every one of them must be labelled."""
        missing = [i for i in frames if i not in self.truths]
        if missing:
            raise GemelError(
                f"{self.path}: no label for frame {missing[0]} "
                f"({len(missing)} of {len(frames)} frames unlabelled)"
            )
        return [self.truths[i] for i in frames]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _frame_line(obj: Any) -> tuple[int, FrameTruth]:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    frame = obj.get("frame")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise ValueError("'frame' must be a non-negative integer")
    kinds = [k for k in ("boxes", "class", "count") if k in obj]
    unknown = set(obj) - {"frame", "time", "boxes", "class", "count"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    if len(kinds) != 1:
        raise ValueError("give exactly one of 'boxes', 'class' or 'count'")
    if "class" in obj:
        if not isinstance(obj["class"], str) or not obj["class"]:
            raise ValueError("'class' must be a class name")
        return frame, FrameTruth(label=obj["class"])
    if "count" in obj:
        c = obj["count"]
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            raise ValueError("'count' must be a non-negative integer")
        return frame, FrameTruth(count=c)
    boxes, classes = [], []
    if not isinstance(obj["boxes"], list):
        raise ValueError("'boxes' must be a list")
    for j, b in enumerate(obj["boxes"]):
        if (
            not isinstance(b, list)
            or len(b) != 5
            or not all(_number(v) for v in b[:4])
            or not isinstance(b[4], str)
        ):
            raise ValueError(f"box {j} must be [x1, y1, x2, y2, class]")
        x1, y1, x2, y2 = (float(v) for v in b[:4])
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            raise ValueError(f"box {j} needs 0 <= x1 < x2 and 0 <= y1 < y2")
        boxes.append((x1, y1, x2, y2))
        classes.append(b[4])
    return frame, FrameTruth(np.array(boxes, np.float32).reshape(-1, 4), tuple(classes))


def read_labels(path: str | Path) -> LabelFile:
    """Parse a label file; a bad line is a GemelError naming the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise GemelError(f"{path}: label file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GemelError(f"{path}: cannot read label file: {e}") from None
    fps: float | None = None
    truths: dict[int, FrameTruth] = {}
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise GemelError(f"{path}: line {no}: not valid JSON: {e.msg}") from None
        if fps is None:
            if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                raise GemelError(f"{path}: line {no}: expected the header {{'format': '{FORMAT}'}}")
            if obj.get("version") != VERSION:
                raise GemelError(f"{path}: line {no}: unsupported version {obj.get('version')!r}")
            if not _number(obj.get("fps")) or obj["fps"] <= 0:
                raise GemelError(f"{path}: line {no}: header needs a positive 'fps'")
            fps = float(obj["fps"])
            continue
        try:
            frame, truth = _frame_line(obj)
        except ValueError as e:
            raise GemelError(f"{path}: line {no}: {e}") from None
        if frame in truths:
            raise GemelError(f"{path}: line {no}: frame {frame} is labelled twice")
        truths[frame] = truth
    if fps is None:
        raise GemelError(f"{path}: empty label file (no header line)")
    return LabelFile(path=path, fps=fps, truths=truths)


def _line(frame: int, t: FrameTruth) -> dict[str, Any]:
    if t.label is not None:
        return {"frame": frame, "class": t.label}
    if t.count is not None:
        return {"frame": frame, "count": t.count}
    boxes = [[*(round(float(v), 2) for v in b), c] for b, c in zip(t.boxes, t.classes, strict=True)]
    return {"frame": frame, "boxes": boxes}


def write_labels(
    path: str | Path, truths: Sequence[FrameTruth] | Mapping[int, FrameTruth], fps: float
) -> None:
    """Write a label file atomically: a sequence labels frames ``0, 1, ...``; a mapping labels
    the frames it has (in index order)."""
    items = sorted(truths.items()) if isinstance(truths, Mapping) else enumerate(truths)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(json.dumps({"format": FORMAT, "version": VERSION, "fps": fps}) + "\n")
        for i, t in items:
            f.write(json.dumps(_line(i, t)) + "\n")

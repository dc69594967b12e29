"""Label files: round trip, and one clear error per malformed line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gemel.data.labels import read_labels, write_labels
from gemel.data.truth import FrameTruth
from gemel.errors import GemelError

HEADER = json.dumps({"format": "gemel-labels", "version": 1, "fps": 5})


def test_round_trip(tmp_path: Path):
    truths = [
        FrameTruth(np.array([[1, 2, 10, 12], [3, 4, 5, 6]], np.float32), ("car", "person")),
        FrameTruth(),
        FrameTruth(label="bus"),
        FrameTruth(count=4),
    ]
    write_labels(tmp_path / "l.jsonl", truths, 5.0)
    got = read_labels(tmp_path / "l.jsonl")
    assert got.fps == 5.0 and sorted(got.truths) == [0, 1, 2, 3]
    back = got.for_frames(range(4))
    assert np.array_equal(back[0].boxes, truths[0].boxes) and back[0].classes == ("car", "person")
    assert back[1].has_boxes and len(back[1].classes) == 0
    assert back[2].label == "bus" and not back[2].has_boxes
    assert back[3].count == 4


def test_sparse_mapping_and_missing_frame(tmp_path: Path):
    write_labels(tmp_path / "l.jsonl", {0: FrameTruth(), 2: FrameTruth(label="car")}, 5.0)
    labels = read_labels(tmp_path / "l.jsonl")
    assert labels.for_frames([0, 2])[1].label == "car"
    with pytest.raises(GemelError, match=r"l\.jsonl: no label for frame 1"):
        labels.for_frames(range(3))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"frame": -1, "class": "car"}', "'frame' must be a non-negative integer"),
        ('{"frame": 1}', "exactly one of 'boxes', 'class' or 'count'"),
        ('{"frame": 1, "class": "car", "count": 2}', "exactly one of"),
        ('{"frame": 1, "boxes": [[1, 2, 3, "car"]]}', "box 0 must be [x1, y1, x2, y2, class]"),
        ('{"frame": 1, "boxes": [[5, 2, 3, 4, "car"]]}', "box 0 needs 0 <= x1 < x2"),
        ('{"frame": 1, "count": 1.5}', "'count' must be a non-negative integer"),
        ('{"frame": 1, "class": "car", "colour": "red"}', "unknown key 'colour'"),
        ('{"frame": 0, "count": 1}', "frame 0 is labelled twice"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(f'{HEADER}\n{{"frame": 0, "count": 2}}\n\n{line}\n')
    with pytest.raises(GemelError) as err:
        read_labels(path)
    text = str(err.value)
    assert text.startswith(f"{path}: line 4: ") and message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty label file"),
        ('{"frame": 0, "count": 1}\n', "line 1: expected the header"),
        ('{"format": "gemel-labels", "version": 2, "fps": 5}\n', "line 1: unsupported version"),
        ('{"format": "gemel-labels", "version": 1}\n', "line 1: header needs a positive 'fps'"),
    ],
)
def test_bad_header(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(GemelError, match=message):
        read_labels(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(GemelError, match="label file not found"):
        read_labels(tmp_path / "nope.jsonl")

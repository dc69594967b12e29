"""Time splits, preprocessing, per-query data from the disk cache, and the frame stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gemel.data import load_split, preprocess, split_range, stream_frames
from gemel.data.labels import write_labels
from gemel.data.sources import cache_dir, load_clip
from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.workload import ModelSpec, Splits, SyntheticSource, load_workload
from test_data_video import N, encode

SOURCE = {"kind": "synthetic", "camera": 2, "seed": 1, "frames": 200, "resolution": [32, 40]}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMEL_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def workload(write_workload: Callable[..., Path]):
    return load_workload(
        write_workload(
            {
                "name": "w",
                "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
                "sources": {"cam": {**SOURCE, "fps": 4}},
                "queries": [
                    {
                        "name": "cars",
                        "source": "cam",
                        "task": {"kind": "count", "classes": ["car"], "buckets": [0, 1, 2]},
                        "model": {"arch": "resnet18", "num_classes": 3, "input_size": 16},
                    },
                    {
                        "name": "people",
                        "source": "cam",
                        "task": {"kind": "presence", "classes": ["person"]},
                        "model": {"arch": "resnet18", "num_classes": 3},
                    },
                ],
            }
        )
    )


def test_splits_are_contiguous_and_cover_everything():
    s = Splits(train=0.6, val=0.2, test=0.2)
    parts = [split_range(101, s, name) for name in ("train", "val", "test")]
    assert parts[0].start == 0 and parts[-1].stop == 101
    assert parts[0].stop == parts[1].start and parts[1].stop == parts[2].start
    assert [len(p) for p in parts] == [61, 20, 20]
    with pytest.raises(GemelError, match="unknown split 'dev'"):
        split_range(10, s, "dev")


def test_preprocess_resizes_and_normalises():
    spec = ModelSpec(arch="resnet18", input_size=(8, 12))
    frames = np.full((2, 16, 24, 3), 255, np.uint8)
    frames[1] = 0
    x = preprocess(frames, spec)
    assert x.shape == (2, 3, 8, 12) and x.dtype == torch.float32
    mean, std = np.array(spec.normalization.mean), np.array(spec.normalization.std)
    assert np.allclose(x[0, :, 0, 0].numpy(), (1 - mean) / std, atol=1e-5)
    assert np.allclose(x[1, :, 0, 0].numpy(), -mean / std, atol=1e-5)
    one = preprocess(frames[0], spec)  # a single frame [H, W, 3]
    assert torch.equal(one, x[:1])
    same_size = preprocess(frames, ModelSpec(arch="resnet18"))
    assert same_size.shape == (2, 3, 16, 24)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(frames.astype(np.float32), spec)


def test_load_split(workload):
    parts = {s: load_split(workload, "cars", s) for s in ("train", "val", "test")}
    assert [len(d) for d in parts.values()] == [100, 50, 50]
    test = parts["test"]
    assert test.inputs.shape == (50, 3, 16, 16)
    assert test.frames.tolist() == list(range(150, 200))
    assert np.allclose(test.times, np.arange(150, 200) / 4)
    clip = load_clip(workload.sources["cam"])
    expected = [min(2, t.classes.count("car")) for t in clip.truths[150:200]]
    assert test.targets.tolist() == expected
    counts = np.bincount(expected, minlength=3)
    assert test.chance_accuracy == pytest.approx(counts.max() / 50)


def test_clips_are_cached_by_spec(workload):
    load_split(workload, "cars", "val")
    entries = list((cache_dir() / "sources").iterdir())
    assert len(entries) == 1 and (entries[0] / "frames.npy").is_file()
    cached = load_clip(workload.sources["cam"])
    fresh = load_clip(SyntheticSource(**SOURCE, fps=4))
    assert np.array_equal(cached.frames, fresh.frames)
    load_clip(SyntheticSource(**{**SOURCE, "seed": 2}))
    assert len(list((cache_dir() / "sources").iterdir())) == 2


def test_task_checked_against_model(workload):
    with pytest.raises(GemelError, match=r"query 'people': field 'model.num_classes'.*needs"):
        load_split(workload, "people", "train")


def test_stream_frames(workload):
    frames = list(stream_frames(workload, "cam"))
    clip = load_clip(workload.sources["cam"])
    assert [f.index for f in frames] == list(range(150, 200))
    assert frames[0].time == 0 and frames[4].time == pytest.approx(1.0)
    assert np.array_equal(frames[3].image, clip.frames[153])
    assert frames[3].truth.classes == clip.truths[153].classes
    with pytest.raises(GemelError, match="no source named 'nope'"):
        next(stream_frames(workload, "nope"))


def test_video_source_with_label_file(tmp_path: Path, write_workload: Callable[..., Path]):
    encode(tmp_path / "gate.avi")  # N frames at 10 fps
    labels = [FrameTruth(label="car" if i % 3 == 0 else "none") for i in range(N)]
    write_labels(tmp_path / "gate.jsonl", labels, 10.0)
    wl = load_workload(
        write_workload(
            {
                "name": "v",
                "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
                "sources": {"gate": {"kind": "video", "path": "gate.avi", "labels": "gate.jsonl"}},
                "queries": [
                    {
                        "name": "car",
                        "source": "gate",
                        "task": {"kind": "presence", "classes": ["car"]},
                        "model": {"arch": "resnet18", "num_classes": 2, "input_size": 16},
                    }
                ],
            }
        )
    )
    test = load_split(wl, "car", "test")
    assert test.frames.tolist() == [9, 10, 11]
    assert test.targets.tolist() == [1, 0, 0] and np.allclose(test.times, [0.9, 1.0, 1.1])
    assert [f.index for f in stream_frames(wl, "gate")] == [9, 10, 11]
    write_labels(tmp_path / "gate.jsonl", labels, 5.0)
    with pytest.raises(GemelError, match=r"labelled at 5 fps but the source samples"):
        load_split(wl, "car", "train")

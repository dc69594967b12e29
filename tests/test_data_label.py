"""``gemel label``: a golden classifier or detector writes a video's label file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from gemel.data.golden import label_video
from gemel.data.labels import read_labels
from gemel.data.tasks import make_task
from gemel.errors import GemelError
from gemel.workload import ModelSpec, TaskSpec
from test_data_video import N, encode


class RedClassifier(nn.Module):
    """Class 1 ('red') when the mean normalised red channel is above 0, else class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, 0].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(red), red], dim=1)


class CornerDetector(nn.Module):
    """A stand-in detector: one confident box on the top-left quarter, one weak box."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = GeneralizedRCNNTransform(32, 64, [0.0] * 3, [1.0] * 3)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for img in images:
            h, w = img.shape[-2:]
            out.append(
                {
                    "boxes": torch.tensor([[0.0, 0.0, w / 2, h / 2], [1.0, 1.0, 5.0, 5.0]]),
                    "labels": torch.tensor([1, 2]),
                    "scores": torch.tensor([0.9, 0.2]),
                }
            )
        return out


def red_classifier() -> nn.Module:
    return RedClassifier()


def corner_detector() -> nn.Module:
    return CornerDetector()


def test_label_with_classifier(tmp_path: Path, gemel_cli):
    video = tmp_path / "clip.avi"
    encode(video)
    res = gemel_cli(
        "label", video, "--golden", "test_data_label:red_classifier", "--categories", "dark,red"
    )
    assert res.status == 0, res.err
    labels = read_labels(tmp_path / "clip.labels.jsonl")
    assert labels.fps == 10 and sorted(labels.truths) == list(range(N))
    # frame i has red = 20 i; normalised red > 0 once 20 i > 0.485 * 255
    expected = ["red" if 20 * i > 0.485 * 255 else "dark" for i in range(N)]
    assert [labels.truths[i].label for i in range(N)] == expected
    presence = make_task(TaskSpec(kind="presence", classes=("red",)))
    assert presence.targets(labels.for_frames(range(N))).sum() == expected.count("red")


def test_label_with_detector(tmp_path: Path, gemel_cli):
    video = tmp_path / "clip.avi"
    encode(video)
    out = tmp_path / "boxes.jsonl"
    res = gemel_cli(
        "label",
        video,
        "--golden",
        "test_data_label:corner_detector",
        "--fps",
        "5",
        "--categories",
        "background,car,person",
        "--out",
        out,
    )
    assert res.status == 0, res.err
    labels = read_labels(out)
    assert labels.fps == 5 and len(labels.truths) == N // 2
    for t in labels.truths.values():
        assert t.classes == ("car",)  # the weak 'person' box is under the 0.5 threshold
        assert t.boxes.tolist() == [[0.0, 0.0, 32.0, 24.0]]


def test_label_errors(tmp_path: Path, gemel_cli):
    res = gemel_cli("label", tmp_path / "nope.mp4", "--golden", "test_data_label:red_classifier")
    assert res.status == 2 and "video file not found" in res.err
    video = tmp_path / "clip.avi"
    encode(video)
    res = gemel_cli("label", video, "--golden", "resnet_18")
    assert res.status == 2 and "unknown architecture 'resnet_18'" in res.err
    res = gemel_cli(
        "label", video, "--golden", "test_data_label:red_classifier", "--categories", "x"
    )
    assert res.status == 2 and "answered class 1, but the categories name classes 0 to 0" in res.err
    assert not (tmp_path / "clip.labels.jsonl").exists()


def test_label_bad_options_are_one_line_and_write_nothing(tmp_path: Path, gemel_cli):
    video = tmp_path / "clip.avi"
    encode(video)
    golden = ("--golden", "test_data_label:red_classifier")
    for extra, message in [
        (("--fps", "0"), "--fps must be positive, not 0"),
        (("--threshold", "1.5"), "--threshold must be in [0, 1], not 1.5"),
        (("--num-classes", "0"), "--num-classes: "),
        (("--input-size", "-4"), "--input-size: input_size must be positive"),
        (("--out", tmp_path), "is a folder; --out needs a file path"),
        (("--device", "tpu"), "bad device 'tpu'"),
    ]:
        gemel_cli("label", video, *golden, *extra).assert_error(message)
    gemel_cli("label", tmp_path / "missing.avi", *golden).assert_error(
        "missing.avi: video file not found"
    )
    gemel_cli("label", video, "--golden", "notamodel").assert_error("notamodel")
    assert not (tmp_path / "clip.labels.jsonl").exists()


def test_label_video_refuses_a_bad_rate_or_threshold(tmp_path: Path):
    video = tmp_path / "clip.avi"
    encode(video)
    spec = ModelSpec(factory="test_data_label:red_classifier")
    with pytest.raises(GemelError, match=r"fps \(the sampling rate\) must be positive"):
        label_video(video, tmp_path / "a.jsonl", model=spec, fps=-1)
    with pytest.raises(GemelError, match="score threshold must be in"):
        label_video(video, tmp_path / "a.jsonl", model=spec, score_threshold=-0.1)
    assert not (tmp_path / "a.jsonl").exists()

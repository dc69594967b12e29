"""The detection task: targets in model-input pixels, mAP accuracy, frame F1, model checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gemel.data import load_split, make_task
from gemel.data.dataset import query_clip
from gemel.data.detection_metrics import Detections
from gemel.data.detection_task import DetectionTask
from gemel.data.train import augment
from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.workload import ModelSpec, TaskSpec, load_workload

LOW_RES = {"min_size": 32, "max_size": 32, "image_mean": [0, 0, 0], "image_std": [1, 1, 1]}


def truth(*objs: tuple[str, list[float]]) -> FrameTruth:
    return FrameTruth(
        np.array([b for _, b in objs], np.float32).reshape(-1, 4), tuple(c for c, _ in objs)
    )


def task(*classes: str, min_area: float = 0.0) -> DetectionTask:
    t = make_task(TaskSpec(kind="detection", classes=classes, min_area=min_area))
    assert isinstance(t, DetectionTask)
    return t


def test_targets_keep_the_classes_and_scale_to_the_input_size():
    frames = [
        truth(("car", [10, 20, 30, 40]), ("person", [0, 0, 4, 8]), ("bus", [40, 0, 96, 48])),
        truth(),
    ]
    t = task("bus", "car").for_frames((96, 192), (48, 48))  # x scales by 48/192, y by 48/96
    first, empty = t.targets(frames)
    assert first.labels.tolist() == [2, 1]  # car is classes[1] -> 2; bus -> 1; person dropped
    assert first.boxes.tolist() == [[10 / 4, 20 / 2, 30 / 4, 40 / 2], [40 / 4, 0, 96 / 4, 48 / 2]]
    assert first.scores.tolist() == [1.0, 1.0]
    assert empty.boxes.shape == (0, 4) and len(empty.labels) == 0
    unscaled = task("bus", "car").for_frames((96, 192), None).targets(frames)[0]
    assert unscaled.boxes[0].tolist() == [10, 20, 30, 40]
    small = task("car", "bus", min_area=500).targets(frames)[0]
    assert small.labels.tolist() == [2]  # the 20x20 car is under 500 px^2


def test_frame_labels_are_refused():
    with pytest.raises(GemelError, match="needs boxes"):
        task("car").targets([FrameTruth(label="car")])


def test_accuracy_is_map_50_score_is_frame_f1_and_chance_is_zero():
    t = task("car")
    gt = t.targets([truth(("car", [0, 0, 10, 10])), truth(("car", [20, 20, 30, 30]))])
    right = [Detections(d.boxes, d.labels, torch.tensor([0.9])) for d in gt]
    # the second frame's box, shifted by half its width (IoU 1/3), is a miss at IoU 0.5
    shifted = gt[1].boxes + torch.tensor([5.0, 0, 5, 0])
    half = [right[0], Detections(shifted, gt[1].labels, torch.tensor([0.6]))]
    assert t.accuracy(right, gt) == pytest.approx(1.0)
    assert t.score(right, gt).tolist() == [1.0, 1.0]
    assert t.score(half, gt).tolist() == [1.0, 0.0]
    # ranked: a hit (precision 1 at recall 1/2), then a false positive; recall never reaches 1.
    # COCO's 101-point interpolation: precision 1 at the 51 recall points 0, 0.01, ..., 0.5
    assert t.accuracy(half, gt) == pytest.approx(51 / 101)
    assert set(t.metrics(half, gt)) == {"map_50", "map"}
    nothing = [Detections.empty(), Detections.empty()]
    assert t.accuracy(nothing, gt) == 0.0 == t.chance_accuracy(gt)


def test_predict_turns_detector_outputs_into_detections_and_refuses_logits():
    t = task("car")
    out = [
        {
            "boxes": torch.ones(2, 4),
            "labels": torch.tensor([1, 1]),
            "scores": torch.tensor([0.8, 0.3]),
        }
    ]
    (d,) = t.predict(out)
    assert d.boxes.shape == (2, 4) and d.labels.dtype == torch.long
    with pytest.raises(GemelError, match="needs per-image detections"):
        t.predict(torch.zeros(2, 2))
    with pytest.raises(GemelError, match="loss comes from the detector"):
        t.loss(out, [])


def test_model_checks_name_the_field():
    t = task("car", "bus")
    t.check_model(
        ModelSpec(arch="fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, kwargs=LOW_RES), "q"
    )
    with pytest.raises(GemelError, match=r"'model.num_classes'.*num_classes: 3"):
        t.check_model(
            ModelSpec(arch="ssdlite320_mobilenet_v3_large", num_classes=2, kwargs=LOW_RES), "q"
        )
    with pytest.raises(GemelError, match=r"'model.kwargs.image_mean'.*\[0, 0, 0\]"):
        t.check_model(ModelSpec(arch="retinanet_resnet50_fpn", num_classes=3), "q")
    with pytest.raises(GemelError, match=r"'model.kwargs.image_std'"):
        spec = ModelSpec(
            arch="ssd300_vgg16", num_classes=3, kwargs={**LOW_RES, "image_std": [0.2] * 3}
        )
        t.check_model(spec, "q")


def test_training_never_mirrors_detection_frames():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    spec = ModelSpec(arch="resnet18", normalization={"mean": [0, 0, 0], "std": [1, 1, 1]})
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        out = augment(x, spec, gen, mirror=False)
        ratio = out / x.clamp(min=1)
        # only a per-image, per-channel gain: the ratio is constant over each channel's pixels
        flat = ratio[..., 1:, :].reshape(2, 3, -1)
        assert torch.allclose(flat, flat[..., :1].expand_as(flat))


def test_load_split_gives_targets_at_the_model_input_size(tmp_path, monkeypatch, write_workload):
    monkeypatch.setenv("GEMEL_CACHE", str(tmp_path / "cache"))
    path = write_workload(
        {
            "name": "det",
            "sources": {"cam": {"kind": "synthetic", "frames": 40, "resolution": [64, 64]}},
            "queries": [
                {
                    "name": "cars",
                    "source": "cam",
                    "task": {"kind": "detection", "classes": ["car", "person"]},
                    "model": {"arch": "fasterrcnn_mobilenet_v3_large_fpn", "num_classes": 3,
                              "input_size": 32, "kwargs": LOW_RES},
                }
            ],
        }
    )  # fmt: skip
    wl = load_workload(path)
    data = load_split(wl, "cars", "test")
    clip = query_clip(wl, "cars")
    assert data.inputs.shape[-2:] == (32, 32)
    found = 0
    for target, i in zip(data.targets, data.frames, strict=True):
        t = clip.truths[i]
        keep = t.selected(("car", "person"))
        assert torch.allclose(target.boxes, torch.from_numpy(t.boxes[keep]) / 2)
        found += len(target.labels)
    assert found > 0
    assert data.chance_accuracy == 0.0

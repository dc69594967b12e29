"""Tasks: targets from ground truth, loss, predictions, scores, chance accuracy, model checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gemel.data.tasks import TASKS, PresenceTask, make_task, register_task
from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.workload import ModelSpec, TaskSpec


def frame(*objs: tuple[str, float]) -> FrameTruth:
    """Boxes of the given classes and widths (height 10), side by side."""
    boxes = [[20 * i, 0, 20 * i + w, 10] for i, (_, w) in enumerate(objs)]
    return FrameTruth(np.array(boxes, np.float32).reshape(-1, 4), tuple(c for c, _ in objs))


TRUTHS = [
    frame(),
    frame(("car", 5)),
    frame(("car", 5), ("car", 5), ("bus", 15)),
    frame(("person", 2), ("truck", 12)),
    frame(("bus", 9), ("truck", 12)),  # tie 1-1: truck covers more pixels
    frame(("car", 1), ("car", 8), ("car", 6), ("bicycle", 3)),
]


def test_presence():
    task = make_task(TaskSpec(kind="presence", classes=("car", "bus")))
    assert task.num_outputs == 2
    assert task.targets(TRUTHS).tolist() == [0, 1, 1, 0, 1, 1]


def test_dominant_with_ties_by_area():
    task = make_task(TaskSpec(kind="dominant", classes=("car", "bus", "truck")))
    assert task.labels == ("none", "car", "bus", "truck")
    assert task.targets(TRUTHS).tolist() == [0, 1, 1, 3, 3, 1]


def test_count_buckets_and_min_area():
    task = make_task(TaskSpec(kind="count", classes=("car",), buckets=(0, 1, 3)))
    assert task.labels == ("0", "1-2", "3+")
    assert task.targets(TRUTHS).tolist() == [0, 1, 1, 0, 0, 2]
    small_ignored = make_task(
        TaskSpec(kind="count", classes=("car",), buckets=(0, 1, 3), min_area=50)
    )
    # widths 5, 5, 1, 8, 6 at height 10: areas 50, 50, 10, 80, 60
    assert small_ignored.targets(TRUTHS).tolist() == [0, 1, 1, 0, 0, 1]


def test_counts_equal_boxes():
    task = make_task(TaskSpec(kind="count", classes=("car", "bus"), buckets=tuple(range(8))))
    expected = [sum(c in ("car", "bus") for c in t.classes) for t in TRUTHS]
    assert task.targets(TRUTHS).tolist() == expected


def test_frame_level_labels():
    presence = make_task(TaskSpec(kind="presence", classes=("car",)))
    dominant = make_task(TaskSpec(kind="dominant", classes=("car", "bus")))
    count = make_task(TaskSpec(kind="count", classes=("car",), buckets=(0, 2)))
    by_class = [FrameTruth(label="car"), FrameTruth(label="dog"), FrameTruth(label="bus")]
    by_count = [FrameTruth(count=0), FrameTruth(count=1), FrameTruth(count=5)]
    assert presence.targets(by_class).tolist() == [1, 0, 0]
    assert presence.targets(by_count).tolist() == [0, 1, 1]
    assert dominant.targets(by_class).tolist() == [1, 0, 2]
    assert count.targets(by_count).tolist() == [0, 0, 1]
    with pytest.raises(GemelError, match="needs boxes or counts"):
        count.targets(by_class)
    with pytest.raises(GemelError, match="needs boxes or classes"):
        dominant.targets(by_count)


def test_loss_predict_score_and_chance():
    task = make_task(TaskSpec(kind="dominant", classes=("car", "bus")))
    targets = torch.tensor([0, 1, 1, 1, 2])
    outputs = torch.full((5, 3), -5.0)
    outputs[torch.arange(5), torch.tensor([0, 1, 2, 1, 2])] = 5.0
    pred = task.predict(outputs)
    assert pred.tolist() == [0, 1, 2, 1, 2]
    assert task.score(pred, targets).tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert task.accuracy(pred, targets) == pytest.approx(0.8)
    # always answering the most frequent class (1: three of five frames)
    assert task.chance_accuracy(targets) == pytest.approx(0.6)
    loss = task.loss(outputs, targets)
    assert loss.ndim == 0 and loss > task.loss(outputs, pred)


def test_training_loss_takes_host_targets_for_a_model_on_another_device():
    # splits keep their targets on the host; a model on a GPU gives its outputs there ("meta"
    # stands in for it: cross-entropy refuses targets on another device than its outputs)
    task = make_task(TaskSpec(kind="presence", classes=("car",)))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).to("meta")
    loss = task.training_loss(
        model, torch.zeros(4, 3, 2, 2, device="meta"), torch.tensor([0, 1, 1, 0])
    )
    assert loss.ndim == 0 and loss.device.type == "meta"


def test_model_must_have_task_outputs():
    task = make_task(TaskSpec(kind="count", classes=("car",), buckets=(0, 1, 2)))
    task.check_model(ModelSpec(arch="resnet18", num_classes=3), "w.yaml: query 'q'")
    task.check_model(ModelSpec(factory="m:f"), "w.yaml: query 'q'")  # checked on outputs
    with pytest.raises(GemelError, match=r"query 'q': field 'model.num_classes'.*num_classes: 3"):
        task.check_model(ModelSpec(arch="resnet18", num_classes=2), "w.yaml: query 'q'")
    with pytest.raises(GemelError, match="needs num_classes: 3"):
        task.check_model(ModelSpec(arch="resnet18"), "w.yaml: query 'q'")


def test_registry_is_open_for_more_kinds(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(TASKS, "detection", raising=False)
    spec = TaskSpec(kind="detection", classes=("car",))
    with pytest.raises(GemelError, match="task kind 'detection' is not available"):
        make_task(spec)

    class Boxes(PresenceTask):
        kind = "detection"

    register_task("detection", Boxes)
    assert isinstance(make_task(spec), Boxes)

"""torchvision's detectors as detection queries: built with low-resolution settings, they train
through the task's loss hook and answer with per-image detections."""

from __future__ import annotations

import pytest
import torch

from gemel.data import make_task
from gemel.data.detection_metrics import Detections
from gemel.models import build_model
from gemel.workload import ModelSpec, TaskSpec

pytestmark = pytest.mark.slow

IDENTITY = {"image_mean": [0, 0, 0], "image_std": [1, 1, 1]}
FEW = {"detections_per_img": 5, "topk_candidates": 50}
RCNN = {
    "min_size": 64,
    "max_size": 64,
    "rpn_pre_nms_top_n_train": 50,
    "rpn_post_nms_top_n_train": 20,
    "rpn_pre_nms_top_n_test": 50,
    "rpn_post_nms_top_n_test": 20,
    "box_batch_size_per_image": 16,
    "box_detections_per_img": 5,
}
DETECTORS = {
    "fasterrcnn_resnet50_fpn": RCNN,
    "fasterrcnn_mobilenet_v3_large_fpn": RCNN,
    "retinanet_resnet50_fpn": {"min_size": 64, "max_size": 64, **FEW},
    "ssd300_vgg16": FEW,  # SSDs resize to their own fixed size (300, 320)
    "ssdlite320_mobilenet_v3_large": FEW,
}


@pytest.mark.parametrize("arch", sorted(DETECTORS))
def test_detector_trains_and_answers_as_a_detection_query(arch):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    task = make_task(TaskSpec(kind="detection", classes=("car", "bus")))
    spec = ModelSpec(
        arch=arch, num_classes=3, input_size=64, kwargs={**IDENTITY, **DETECTORS[arch]}
    )
    task.check_model(spec, "q")
    model = build_model(spec)
    x = torch.rand(2, 3, 64, 64)
    targets = [
        Detections(torch.tensor([[4.0, 8, 30, 24]]), torch.tensor([1]), torch.ones(1)),
        Detections.empty(),  # a frame without objects trains too
    ]
    if arch == "ssd300_vgg16":  # VGG16 at 300x300 is slow on a CPU: one frame, no backward
        x, targets = x[:1], targets[:1]
    model.train()
    loss = task.training_loss(model, x, targets)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    if arch != "ssd300_vgg16":
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        answers = task.answers(model, x)
    assert len(answers) == len(x)
    for d in answers:
        assert isinstance(d, Detections) and d.boxes.shape[1] == 4
        assert set(d.labels.tolist()) <= {1, 2}
        assert len(d.labels) == len(d.scores) <= 5

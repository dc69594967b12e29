"""A tiny Faster R-CNN whose backbone has exactly the convolutions of ``merge_helpers.tiny_net``
(so it merges with that classifier), for detection tests on 32 px shape videos."""

from __future__ import annotations

from pathlib import Path

import yaml
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from merge_helpers import tiny_net, write_shapes_video


def tiny_detector(num_classes: int = 2, width: int = 8, size: int = 32) -> nn.Module:
    """Faster R-CNN on tiny_net's convolutions (stride 4), anchors of 8 and 16 px."""
    backbone = tiny_net(width=width)[:8]  # the convolutions, norms and activations
    backbone.out_channels = 2 * width
    return FasterRCNN(
        backbone,
        min_size=size,
        max_size=size,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=AnchorGenerator(((8, 16),), ((0.5, 1.0, 2.0),)),
        rpn_pre_nms_top_n_train=100,
        rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_roi_pool=MultiScaleRoIAlign(["0"], 4, 2),
        box_head=TwoMLPHead(2 * width * 16, 32),
        box_predictor=FastRCNNPredictor(32, num_classes),
        box_batch_size_per_image=32,
        box_detections_per_img=10,
    )


def detection_workload_file(root: Path, name: str, *, frames: int, epochs: int) -> Path:
    """A workload file in ``root``: a tiny detector of cars and a tiny presence classifier of
    people on one shapes video of ``frames`` frames (written beside it, with its labels)."""
    write_shapes_video(root / "v0.mkv", frames, seed=0)
    data = {
        "name": name,
        "defaults": {"train": {"epochs": epochs, "batch_size": 32, "lr": 0.005}, "sla_ms": 1000},
        "sources": {"v0": {"kind": "video", "path": "v0.mkv", "labels": "v0.labels.jsonl"}},
        "queries": [
            {
                "name": "cars",
                "source": "v0",
                "task": {"kind": "detection", "classes": ["car"]},
                "model": {"factory": "detection_helpers:tiny_detector", "num_classes": 2},
            },
            {
                "name": "people",
                "source": "v0",
                "task": {"kind": "presence", "classes": ["person"]},
                "model": {"factory": "merge_helpers:tiny_net", "num_classes": 2},
            },
        ],
    }
    path = root / "w.yaml"
    path.write_text(yaml.safe_dump(data))
    return path

"""Tiny models and bundles for the edge tests (a few KiB of weights, 16 px inputs)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gemel.analyze import analyze_models
from gemel.merge.bundle import save_bundle
from gemel.merge.config import MergeConfig
from gemel.merge.tying import apply_merge
from gemel.models import build_model
from gemel.workload import Workload, workload_from_dict


def tiny(num_classes: int = 2) -> nn.Module:
    """conv-bn-relu, conv, pool, linear: shareable convolutions and a private norm layer."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def tiny_workload(names: list[str], **extra) -> Workload:
    data = {
        "name": "tiny",
        "queries": [
            {"name": n, "model": {"factory": "edge_tiny:tiny", "input_size": 16}} for n in names
        ],
        **extra,
    }
    return workload_from_dict(data)


def tiny_models(wl: Workload, seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {q.name: build_model(q.model) for q in wl.queries}


def tiny_bundle(out: Path, names: list[str], *, merged: bool, workload: Workload | None = None):
    """Save a bundle of tiny models; ``merged`` shares every shareable layer."""
    wl = workload or tiny_workload(names)
    models = tiny_models(wl)
    config = MergeConfig()
    if merged:
        config = MergeConfig.from_instances(analyze_models(models).instances)
        apply_merge(models, config)
    save_bundle(out, models, workload=wl, config=config)
    return out

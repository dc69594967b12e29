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


def tiny(num_classes: int = 2, width: int = 0) -> nn.Module:
    """conv-bn-relu, conv, pool, linear: shareable convolutions and a private norm layer.

    ``width`` > 0 adds a hidden linear layer of that width: heavy weights, cheap compute
    (what makes swapping, not computing, the bottleneck).
    """
    head = [nn.Linear(32, num_classes)]
    if width:
        head = [nn.Linear(32, width), nn.ReLU(), nn.Linear(width, num_classes)]
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        *head,
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


def stream_workload(
    names: list[str], *, fps: float = 20, sla_ms: float = 200, frames: int = 200, width: int = 0
) -> dict:
    """A workload dict whose queries count cars and people on one small synthetic camera."""
    return {
        "name": "tiny-streams",
        "defaults": {"fps": fps, "sla_ms": sla_ms},
        "sources": {
            "cam0": {
                "kind": "synthetic", "camera": 0, "seed": 0, "frames": frames,
                "resolution": [32, 32], "fps": fps,
            }
        },
        "queries": [
            {
                "name": n,
                "source": "cam0",
                "task": {"kind": "count", "classes": ["car", "person"], "buckets": [0, 1, 2]},
                "model": {
                    "factory": "edge_tiny:tiny", "input_size": 16,
                    "kwargs": {"num_classes": 3, "width": width},
                },
            }
            for n in names
        ],
    }  # fmt: skip


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

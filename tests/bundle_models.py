"""Tiny models, workloads and tied model sets for the tying and bundle tests."""

from __future__ import annotations

import torch
from torch import nn

from gemel.analyze import find_instances
from gemel.merge import MergeConfig, apply_merge
from gemel.workload import Workload, workload_from_dict


def small_convnet(num_classes: int = 3) -> nn.Module:
    """Two conv+BN stages and a linear head (BN adds float and int64 buffers)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def mixed_dtype_net(num_classes: int = 3) -> nn.Module:
    """Layers in float16, bfloat16, float32 and float64, plus int64, int32 and bool buffers."""
    net = small_convnet(num_classes)
    net[0].to(torch.float16)
    net[3].to(torch.bfloat16)
    net[4].to(torch.bfloat16)
    net[8].to(torch.float64)
    net.register_buffer("steps", torch.tensor([3, 1, 4], dtype=torch.int32))
    net.register_buffer("mask", torch.tensor([True, False, True, True, False]))
    return net


def make_workload(*queries: tuple[str, str, int], name: str = "t") -> Workload:
    """A workload of ``(query, factory function in this module, num_classes)`` queries."""
    return workload_from_dict(
        {
            "name": name,
            "queries": [
                {
                    "name": q,
                    "model": {"factory": f"{__name__}:{fn}", "num_classes": n, "input_size": 16},
                    "task": {"kind": "presence", "classes": ["car"]},
                }
                for q, fn, n in queries
            ],
        }
    )


def build(workload: Workload, seed: int = 0) -> dict[str, nn.Module]:
    """Every query's model, initialised from ``seed``."""
    from gemel.analyze import build_models

    torch.manual_seed(seed)
    return build_models(workload)


def tie_all(models: dict[str, nn.Module], init: str = "first") -> MergeConfig:
    """Share every instance the analysis finds; returns the configuration."""
    config = MergeConfig.from_instances(find_instances(models), init=init)
    apply_merge(models, config)
    return config


class _Anchored(nn.Module):
    """A model that keeps a plain tensor attribute (like a detector's anchors)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = small_convnet(num_classes)
        self.offsets = [torch.linspace(-1.0, 1.0, num_classes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.offsets[0]


def anchored_net(num_classes: int = 3) -> nn.Module:
    """small_convnet plus an output offset held outside parameters and buffers."""
    return _Anchored(num_classes)

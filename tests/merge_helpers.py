"""Tiny models and a rule-based fake retrainer for the merge tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from torch import nn

from gemel.data.labels import write_labels
from gemel.data.truth import FrameTruth
from gemel.merge.trainer import QueryOutcome, TrainResult
from gemel.merge.tying import shared_locations


def tiny_net(num_classes: int = 2, width: int = 8, norm: bool = True) -> nn.Module:
    """Conv2d(3->w, s2), Conv2d(w->2w, s2), Conv2d(2w->2w), max pool, Linear(2w->n)."""

    def bn(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if norm else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1),
        bn(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        bn(2 * width),
        nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


def tiny_models(names: Sequence[str], seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {n: tiny_net() for n in names}


class FakeRetrainer:
    """Accuracy by rule from the live sharing structure; retraining nudges every weight.

    A query meets its target (0.8) unless it shares a tensor with a query in ``conflicts[q]``,
    holds more than ``limit[q]`` shared layers, or lacks a shared layer with ``needs[q]``.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        conflicts: dict[str, set[str]] | None = None,
        limit: dict[str, int] | None = None,
        needs: dict[str, str] | None = None,
    ) -> None:
        self.targets = dict.fromkeys(names, 0.8)
        self.conflicts = conflicts or {}
        self.limit = limit or {}
        self.needs = needs or {}
        self.calls: list[tuple[tuple[str, ...], int]] = []

    def _ok(self, models: dict[str, nn.Module], q: str) -> bool:
        partners: set[str] = set()
        layers = 0
        for locs in shared_locations(models):
            qs = {x for x, _ in locs}
            if q in qs:
                partners |= qs - {q}
                layers += 1
        if partners & self.conflicts.get(q, set()):
            return False
        if layers > self.limit.get(q, 10**9):
            return False
        return q not in self.needs or self.needs[q] in partners

    def validate(self, models: dict[str, nn.Module], queries: Sequence[str]) -> dict[str, float]:
        return {q: 0.9 if self._ok(models, q) else 0.5 for q in queries}

    def retrain(
        self,
        models: dict[str, nn.Module],
        queries: Sequence[str],
        *,
        seed: int,
        deadline: float | None,
        on_validate: Callable[[float, dict[str, float]], None] | None,
    ) -> TrainResult:
        self.calls.append((tuple(queries), seed))
        gen = torch.Generator().manual_seed(seed)
        seen: set[int] = set()
        with torch.no_grad():
            for q in queries:
                for p in models[q].parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        p.add_(torch.randn(p.shape, generator=gen) * 0.01)
        acc = self.validate(models, queries)
        outcomes = {q: QueryOutcome(0.5, a, self.targets[q], samples=10) for q, a in acc.items()}
        return TrainResult(outcomes, steps=1, epochs=1.0, stop="met")


def write_shapes_video(path: Path, frames: int, seed: int, size: int = 32) -> Path:
    """A lossless video of red squares ("car") and blue bars ("person") on noise, with labels.

    Each object is in a frame with probability 1/2, independently, at a random place; the
    scene does not drift, so every split looks alike. Returns the label file's path.
    """
    rng = np.random.default_rng(seed)
    truths = []
    container = av.open(str(path), "w")
    stream = container.add_stream("ffv1", rate=10)
    stream.width = stream.height = size
    stream.pix_fmt = "bgr0"
    for _ in range(frames):
        img = rng.integers(70, 130, (size, size, 3)).astype(np.uint8)
        boxes, classes = [], []
        for cls, (h, w), colour in (
            ("car", (8, 8), (220, 30, 30)),
            ("person", (10, 4), (30, 40, 220)),
        ):
            if rng.random() < 0.5:
                y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                img[y : y + h, x : x + w] = colour
                boxes.append([x, y, x + w, y + h])
                classes.append(cls)
        truths.append(FrameTruth(np.array(boxes, np.float32).reshape(-1, 4), tuple(classes)))
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    labels = path.with_suffix(".labels.jsonl")
    write_labels(labels, truths, fps=10.0)
    return labels

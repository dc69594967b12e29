"""Tiny models and a rule-based fake retrainer for the merge tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from gemel.merge.trainer import QueryOutcome, TrainResult
from gemel.merge.tying import shared_locations


def tiny_net(num_classes: int = 2) -> nn.Module:
    """Three convolutions and a linear head: Conv2d(3->8), (8->8), (8->16), Linear(16->n)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
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

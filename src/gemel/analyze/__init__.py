"""analyze: shareable layers across a workload's models, and exact memory accounting."""

from __future__ import annotations

from gemel.analyze.analysis import (
    Analysis,
    Group,
    Instance,
    Location,
    QueryStats,
    analyze_models,
    find_instances,
    make_groups,
)
from gemel.analyze.signature import Signature, is_shareable, shareable_layers, signature_of
from gemel.models import build_model
from gemel.workload import Workload


def build_models(workload: Workload, *, device: str | None = None) -> dict:
    """Every query's model, keyed by query name (checkpoints loaded)."""
    return {
        q.name: build_model(q.model, where=f"{workload.label}: query {q.name!r}", device=device)
        for q in workload.queries
    }


def analyze(workload: Workload) -> Analysis:
    """Analyze a workload: models are built on the ``meta`` device, so no weights are allocated.

    Checkpoints are still read, so their dtypes count (a float16 checkpoint counts half).
    """
    labels = {q.name: q.model.label for q in workload.queries}
    return analyze_models(build_models(workload, device="meta"), workload.name, labels)


__all__ = [
    "Analysis",
    "Group",
    "Instance",
    "Location",
    "QueryStats",
    "Signature",
    "analyze",
    "analyze_models",
    "build_models",
    "find_instances",
    "is_shareable",
    "make_groups",
    "shareable_layers",
    "signature_of",
]

"""Score queries' models on a split of their sources: any bundle, merged or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gemel.data import load_split, split_scores
from gemel.errors import GemelError
from gemel.merge.bundle import load_bundle, read_manifest
from gemel.workload import Workload


def evaluate_models(
    workload: Workload, models: dict[str, nn.Module], split: str = "test"
) -> dict[str, dict[str, Any]]:
    """Per query: ``accuracy``, ``chance_accuracy`` and ``frames`` on ``split`` (and the task's
    other figures, e.g. a detection query's ``map_50`` and ``map``)."""
    out = {}
    for q, model in models.items():
        data = load_split(workload, q, split)
        out[q] = {
            **split_scores(model, data),
            "chance_accuracy": data.chance_accuracy,
            "frames": len(data),
        }
    return out


def evaluate_bundle(
    workload: Workload, bundle_dir: str | Path, split: str = "test", device: str = "cpu"
) -> dict[str, Any]:
    """Score every query of the bundle in ``bundle_dir`` on ``split`` of its source.

    The bundle's queries must be queries of ``workload`` with the same model input (size and
    normalisation), since frames are prepared from the workload's settings.
    """
    manifest = read_manifest(bundle_dir)
    for q, entry in manifest.queries.items():
        if q not in workload.query_names:
            raise GemelError(
                f"{bundle_dir}: query {q!r} of the bundle is not in workload {workload.label}"
            )
        spec = workload.query(q).model
        if (entry.input_size, entry.normalization) != (spec.input_size, spec.normalization):
            raise GemelError(
                f"{bundle_dir}: query {q!r} was bundled with other input settings "
                f"(input_size {entry.input_size}) than {workload.label} gives "
                f"(input_size {spec.input_size})"
            )
    models = load_bundle(bundle_dir, device=device)
    return {
        "workload": workload.name,
        "bundle": str(bundle_dir),
        "split": split,
        "queries": evaluate_models(workload, models, split),
    }

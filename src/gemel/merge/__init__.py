"""merge: tie shared layers across queries' models, retrain them jointly under the planner
(:func:`merge_workload`), store merged workloads as bundles and score them
(:func:`evaluate_bundle`)."""

from __future__ import annotations

from gemel.merge.bundle import block_views, load_bundle, read_tensors, save_bundle, weights_path
from gemel.merge.config import MergeConfig, SharedLayer
from gemel.merge.evaluate import evaluate_bundle
from gemel.merge.manifest import (
    ALIGN,
    FORMAT_VERSION,
    BlockEntry,
    BundleManifest,
    QueryEntry,
    TensorEntry,
    read_manifest,
)
from gemel.merge.run import merge_workload
from gemel.merge.tying import Snapshot, apply_merge, shared_locations, untie

__all__ = [
    "ALIGN",
    "FORMAT_VERSION",
    "BlockEntry",
    "BundleManifest",
    "MergeConfig",
    "QueryEntry",
    "SharedLayer",
    "Snapshot",
    "TensorEntry",
    "apply_merge",
    "block_views",
    "evaluate_bundle",
    "load_bundle",
    "merge_workload",
    "read_manifest",
    "read_tensors",
    "save_bundle",
    "shared_locations",
    "untie",
    "weights_path",
]

"""merge: tie shared layers across queries' models, and store merged workloads as bundles."""

from __future__ import annotations

from gemel.merge.bundle import block_views, load_bundle, read_tensors, save_bundle, weights_path
from gemel.merge.config import MergeConfig, SharedLayer
from gemel.merge.manifest import (
    ALIGN,
    FORMAT_VERSION,
    BlockEntry,
    BundleManifest,
    QueryEntry,
    TensorEntry,
    read_manifest,
)
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
    "load_bundle",
    "read_manifest",
    "read_tensors",
    "save_bundle",
    "shared_locations",
    "untie",
    "weights_path",
]

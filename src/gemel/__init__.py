"""gemel: merge the vision models of an edge video-analytics workload so they fit one GPU."""

from gemel.analyze import Analysis, analyze, analyze_models
from gemel.errors import GemelError
from gemel.merge import MergeConfig, apply_merge, load_bundle, read_manifest, save_bundle
from gemel.models import build_model
from gemel.workload import Workload, load_workload

__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "GemelError",
    "MergeConfig",
    "Workload",
    "analyze",
    "analyze_models",
    "apply_merge",
    "build_model",
    "load_bundle",
    "load_workload",
    "read_manifest",
    "save_bundle",
]

"""gemel: merge the vision models of an edge video-analytics workload so they fit one GPU.

The public names below are imported on first use (PEP 562), so ``import gemel`` and the
``gemel`` command's help stay fast: torch loads only when a name that needs it is touched.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemel.analyze import Analysis, analyze, analyze_models
    from gemel.errors import GemelError
    from gemel.merge import MergeConfig, apply_merge, load_bundle, read_manifest, save_bundle
    from gemel.models import build_model
    from gemel.workload import Workload, load_workload

__version__ = "0.1.0"

_HOMES = {
    "Analysis": "gemel.analyze",
    "GemelError": "gemel.errors",
    "MergeConfig": "gemel.merge",
    "Workload": "gemel.workload",
    "analyze": "gemel.analyze",
    "analyze_models": "gemel.analyze",
    "apply_merge": "gemel.merge",
    "build_model": "gemel.models",
    "load_bundle": "gemel.merge",
    "load_workload": "gemel.workload",
    "read_manifest": "gemel.merge",
    "save_bundle": "gemel.merge",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gemel' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Keeps ``gemel.analyze`` the function: importing the subpackage of the same name would
    otherwise bind the subpackage over it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

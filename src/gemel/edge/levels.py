"""Memory levels (DESIGN.md §7), computed from the unmerged models and used for every strategy.

Running memory of a query = its weights + its peak activation memory at batch 1. ``min`` = the
largest running memory + the framework's fixed overhead; ``all`` (all-fit) = every query's
weights + the largest activation memory + the overhead; ``50`` and ``75`` lie 50% and 75% of
the way from ``min`` to ``all``. Every level includes the overhead.

A query's blocks in any bundle hold all of its tensors, so a profile of any bundle of the
workload (merged or not) gives the unmerged per-query figures.
"""

from __future__ import annotations

from collections.abc import Mapping

from gemel.edge.profile import Profile
from gemel.errors import GemelError
from gemel.units import parse_bytes


def memory_levels(
    weight_bytes: Mapping[str, int], activation_bytes: Mapping[str, int], overhead_bytes: int
) -> dict[str, int]:
    """``{"min", "50", "75", "all"} -> budget bytes`` for queries with these figures."""
    if not weight_bytes:
        raise GemelError("no queries to size memory levels for")
    lo = max(weight_bytes[q] + activation_bytes[q] for q in weight_bytes) + overhead_bytes
    hi = sum(weight_bytes.values()) + max(activation_bytes.values()) + overhead_bytes
    hi = max(hi, lo)
    return {
        "min": lo,
        "50": lo + (hi - lo) // 2,
        "75": lo + (hi - lo) * 3 // 4,
        "all": hi,
    }


def profile_levels(profile: Profile, queries: list[str] | None = None) -> dict[str, int]:
    """Memory levels from a profile's per-query weights and batch-1 activations."""
    names = queries or list(profile.queries)
    return memory_levels(
        {q: profile.queries[q].weight_bytes for q in names},
        {q: profile.queries[q].batches[min(profile.queries[q].batches)].activation_bytes
         for q in names},
        profile.overhead_bytes,
    )  # fmt: skip


def resolve_budget(text: str, levels: Mapping[str, int]) -> tuple[str, int]:
    """``min``/``50``/``75``/``all`` or a size like ``2GiB`` -> ``(memory_level, bytes)``."""
    if text in levels:
        return text, int(levels[text])
    return "explicit", parse_bytes(text)

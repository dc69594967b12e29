"""Names the registries answer to, free of heavy imports so the CLI can offer them as choices
without loading torch.

The merge planner (:data:`gemel.merge.planner.STRATEGIES`) and the edge
(:data:`gemel.edge.eviction.EVICTION_POLICIES`) register classes under these names; a test
holds each registry to its tuple here.
"""

from __future__ import annotations

from typing import Literal, get_args

MERGE_STRATEGIES: tuple[str, ...] = ("gemel", "all", "stem", "none")
"""Merge planner strategies, in the order ``gemel merge --help`` lists them."""

EVICTION_POLICIES: tuple[str, ...] = ("lru", "mru", "schedule")
"""Eviction policies of the edge block manager."""

BEST_EVICTION_POLICY = "schedule"
"""The eviction policy baselines get (DESIGN.md, fair baselines)."""

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)
"""A source's time segments, in order."""

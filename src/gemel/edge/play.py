"""Playing a bundle's streams: what ``gemel run`` and ``gemel simulate`` share.

Both check a request, lay the bundle's blocks out under the budget, drive the time- or
space-sharing engine and label the run's record alike; they differ only in the executor (real
tensors or replayed answers), the clock (wall or virtual) and where the profile comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gemel.edge.blocks import BlockManager
from gemel.edge.engine import Clock, EdgeEngine, EngineResult, Executor, UpdateSource
from gemel.edge.eviction import make_policy
from gemel.edge.executor import manifest_blocks
from gemel.edge.feeds import QueryFeed
from gemel.edge.levels import profile_levels, resolve_budget
from gemel.edge.profile import Profile
from gemel.edge.scheduler import CostModel, TimeSharingScheduler, batch_sizes, merge_aware_order
from gemel.edge.space import SpaceSharingEngine
from gemel.edge.streams import Stream
from gemel.edge.summary import run_record
from gemel.errors import GemelError
from gemel.merge.bundle import BundleManifest

OnTurn = Callable[[EdgeEngine, float], None]
"""called after every batch of time sharing with the engine and the clock's time"""


def bundle_strategy(manifest: BundleManifest) -> str:
    """The planner strategy that produced a bundle (``none`` when nothing is shared)."""
    label = manifest.extra.get("strategy")
    if isinstance(label, str):
        return label
    return "gemel" if manifest.merge.shared else "none"


def check_request(
    manifest: BundleManifest,
    feeds: Mapping[str, QueryFeed],
    *,
    eviction: str,
    order: str,
    sharing: str,
) -> None:
    """Refuse a feed the bundle has no model for, and an unknown eviction policy, order or
    sharing mode."""
    missing = [q for q in feeds if q not in manifest.queries]
    if missing:
        raise GemelError(f"the bundle has no model for query {missing[0]!r}")
    make_policy(eviction)
    if order not in ("merge", "given"):
        raise GemelError(f"unknown order {order!r}: use merge or given")
    if sharing not in ("time", "space"):
        raise GemelError(f"unknown sharing {sharing!r}: use time or space")


@dataclass
class Layout:
    """The bundle's blocks under one budget, and the order the scheduler cycles in."""

    level: str
    """``min``, ``50``, ``75``, ``all`` or ``explicit``"""
    budget_bytes: int
    blocks: BlockManager
    order: list[str]


def lay_out(
    manifest: BundleManifest,
    profile: Profile,
    queries: list[str],
    *,
    memory_budget: str | int,
    eviction: str,
    order: str,
) -> Layout:
    """A block manager over the blocks ``queries`` use, under ``memory_budget`` (a level of
    DESIGN.md §7 sized from ``profile``, or a size), evicting by the policy ``eviction``."""
    policy = make_policy(eviction)
    level, budget = resolve_budget(str(memory_budget), profile_levels(profile, queries))
    blocks = [b for b in manifest_blocks(manifest) if b.queries & set(queries)]
    bm = BlockManager(blocks, budget, policy, overhead_bytes=profile.overhead_bytes)
    sched_order = merge_aware_order(queries, bm.blocks_of) if order == "merge" else queries
    return Layout(level, budget, bm, list(sched_order))


def play(
    layout: Layout,
    streams: Mapping[str, Stream],
    executor: Executor,
    clock: Clock,
    cost: CostModel,
    *,
    duration_s: float,
    sharing: str,
    prefetch: bool,
    max_batch: int,
    learn: bool = True,
    updates: UpdateSource | None = None,
    on_turn: OnTurn | None = None,
) -> EngineResult:
    """Play ``streams`` for ``duration_s`` s, time-sharing the device (round-robin, swapping)
    or space-sharing it (fixed slices, :mod:`gemel.edge.space`). ``learn``: the cost model
    learns from observed durations; ``updates``: newer bundles to adopt (time sharing only)."""
    sizes = batch_sizes(max_batch)
    if sharing == "space":
        space = SpaceSharingEngine(
            streams, layout.order, layout.blocks, executor, clock, cost, batch_sizes=sizes
        )
        return space.run(duration_s)
    engine = EdgeEngine(
        streams, TimeSharingScheduler(layout.order), layout.blocks, executor, clock, cost,
        prefetch=prefetch, batch_sizes=sizes, learn=learn, updates=updates,
    )  # fmt: skip
    return engine.run(duration_s, on_turn=on_turn)


def play_record(
    result: EngineResult,
    streams: Mapping[str, Stream],
    feeds: Mapping[str, QueryFeed],
    manifest: BundleManifest,
    layout: Layout,
    *,
    sharing: str,
    **labels: Any,
) -> dict[str, Any]:
    """The run's JSON record, labelled with the bundle's strategy, the layout's budget and
    eviction policy and ``sharing``; ``labels`` (prefetch, device, mode, ...) follow."""
    return run_record(
        result,
        streams,
        {q: f.score for q, f in feeds.items()},
        strategy=bundle_strategy(manifest),
        memory_level=layout.level,
        budget_bytes=layout.budget_bytes,
        sharing=sharing,
        eviction=layout.blocks.policy.name,
        **labels,
    )

"""``gemel run``: serve a bundle's queries on their test streams, in real time, under a budget.

Real bytes are copied from the host store into the device arena and real forward passes run
on the streams' frames; every duration in the results is measured, never read from a profile.
A profile (given, or measured at start) only seeds the scheduler's cost model, which then
learns from what it observes, and sizes the memory levels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gemel.edge.blocks import BlockManager
from gemel.edge.engine import EdgeEngine, WallClock
from gemel.edge.eviction import BEST_POLICY, make_policy
from gemel.edge.executor import TorchExecutor, manifest_blocks
from gemel.edge.feeds import QueryFeed
from gemel.edge.levels import profile_levels, resolve_budget
from gemel.edge.profile import Profile
from gemel.edge.profiler import profile_bundle, resolve_device
from gemel.edge.scheduler import BATCH_SIZES, TimeSharingScheduler, batch_sizes, merge_aware_order
from gemel.edge.space import SpaceSharingEngine
from gemel.edge.streams import Stream
from gemel.edge.summary import run_record
from gemel.edge.updates import BundleWatcher
from gemel.errors import GemelError
from gemel.merge.bundle import BundleManifest, load_bundle, read_manifest

Status = Callable[[EdgeEngine, float], None]


def bundle_strategy(manifest: BundleManifest) -> str:
    """The planner strategy that produced a bundle (``none`` when nothing is shared)."""
    label = manifest.extra.get("strategy")
    if isinstance(label, str):
        return label
    return "gemel" if manifest.merge.shared else "none"


def check_feeds(manifest: BundleManifest, feeds: Mapping[str, QueryFeed]) -> None:
    missing = [q for q in feeds if q not in manifest.queries]
    if missing:
        raise GemelError(f"the bundle has no model for query {missing[0]!r}")


def check_modes(order: str, sharing: str) -> None:
    if order not in ("merge", "given"):
        raise GemelError(f"unknown order {order!r}: use merge or given")
    if sharing not in ("time", "space"):
        raise GemelError(f"unknown sharing {sharing!r}: use time or space")


def run_bundle(
    bundle_dir: str | Path,
    feeds: Mapping[str, QueryFeed],
    *,
    device: str = "cpu",
    memory_budget: str | int = "all",
    duration_s: float = 30.0,
    eviction: str = BEST_POLICY,
    order: str = "merge",
    sharing: str = "time",
    prefetch: bool = True,
    max_batch: int = max(BATCH_SIZES),
    profile: Profile | None = None,
    live_updates: bool = False,
    status: Status | None = None,
) -> dict[str, Any]:
    """Play ``feeds`` through the bundle's models for ``duration_s`` s; the run's JSON record.

    ``memory_budget``: ``min``/``50``/``75``/``all`` (levels of DESIGN.md §7) or a size.
    ``order``: ``merge`` (queries sharing blocks adjacent) or ``given`` (the feeds' order).
    ``sharing``: ``time`` (round-robin, swapping) or ``space`` (fixed slices, concurrent;
    :mod:`gemel.edge.space`). ``max_batch`` caps the batch sizes (from 1, 2, 4, 8).
    ``live_updates``: adopt newer bundles published in ``bundle_dir`` while running (time
    sharing only); each adoption is reported under ``updates``.
    """
    dev = resolve_device(device)
    manifest = read_manifest(bundle_dir)
    check_feeds(manifest, feeds)
    policy = make_policy(eviction)
    check_modes(order, sharing)
    if live_updates and sharing != "time":
        raise GemelError("live bundle updates need time sharing (--sharing time)")
    if profile is None:
        frame_size = {q: f.images[0].shape[:2] for q, f in feeds.items() if len(f.images)}
        profile = profile_bundle(bundle_dir, str(dev), repeats=2, frame_size=frame_size)
    names = list(feeds)
    level, budget = resolve_budget(str(memory_budget), profile_levels(profile, names))

    blocks = [b for b in manifest_blocks(manifest) if b.queries & set(names)]
    bm = BlockManager(blocks, budget, policy, overhead_bytes=profile.overhead_bytes)
    for q in names:
        bm.check_fits(q, 0)
    cost = profile.cost_model()
    sched_order = merge_aware_order(names, bm.blocks_of) if order == "merge" else names
    # room for a newer bundle's blocks beside the old ones while adopting it
    spare = 2 if live_updates else 1
    arena = min(spare * sum(b.nbytes for b in blocks), max(0, budget - profile.overhead_bytes))
    models = load_bundle(bundle_dir)
    executor = TorchExecutor(
        bundle_dir,
        manifest,
        {q: models[q] for q in manifest.queries},
        device=dev,
        arena_bytes=arena,
        prepare=lambda q, frames: feeds[q].batch(frames),
        predict=lambda q, out: feeds[q].predict(out),
    )
    streams = {q: Stream(q, f.fps, f.sla_s, f.frames_total) for q, f in feeds.items()}
    if sharing == "space":
        space = SpaceSharingEngine(
            streams, sched_order, bm, executor, WallClock(), cost,
            batch_sizes=batch_sizes(max_batch),
        )  # fmt: skip
        space.clock = WallClock()  # the streams start now, after the set-up
        result = space.run(duration_s)
    else:
        watcher = BundleWatcher(bundle_dir, manifest, pin=executor.cuda) if live_updates else None
        engine = EdgeEngine(
            streams, TimeSharingScheduler(sched_order), bm, executor, WallClock(), cost,
            prefetch=prefetch, batch_sizes=batch_sizes(max_batch), updates=watcher,
        )  # fmt: skip
        with watcher or contextlib.nullcontext():
            engine.clock = WallClock()  # the streams start now, after the set-up
            result = engine.run(duration_s, on_turn=status)
    return run_record(
        result,
        streams,
        {q: f.score for q, f in feeds.items()},
        strategy=bundle_strategy(manifest),
        memory_level=level,
        budget_bytes=budget,
        sharing=sharing,
        eviction=policy.name,
        prefetch=prefetch,
        device=str(dev),
        mode="runtime",
    )

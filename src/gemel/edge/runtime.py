"""``gemel run``: serve a bundle's queries on their test streams, in real time, under a budget.

Real bytes are copied from the host store into the device arena and real forward passes run
on the streams' frames; every duration in the results is measured, never read from a profile.
A profile (given, or measured at start) only seeds the scheduler's cost model, which then
learns from what it observes, and sizes the memory levels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gemel.choices import BEST_EVICTION_POLICY
from gemel.edge.engine import WallClock
from gemel.edge.executor import TorchExecutor
from gemel.edge.feeds import QueryFeed, frame_sizes
from gemel.edge.play import OnTurn, check_request, lay_out, play, play_record
from gemel.edge.profile import Profile
from gemel.edge.profiler import profile_bundle
from gemel.edge.scheduler import BATCH_SIZES
from gemel.edge.streams import Stream
from gemel.edge.updates import BundleWatcher
from gemel.errors import GemelError
from gemel.merge.bundle import load_bundle, read_manifest
from gemel.models import check_device


def run_bundle(
    bundle_dir: str | Path,
    feeds: Mapping[str, QueryFeed],
    *,
    device: str = "cpu",
    memory_budget: str | int = "all",
    duration_s: float = 30.0,
    eviction: str = BEST_EVICTION_POLICY,
    order: str = "merge",
    sharing: str = "time",
    prefetch: bool = True,
    max_batch: int = max(BATCH_SIZES),
    profile: Profile | None = None,
    live_updates: bool = False,
    status: OnTurn | None = None,
) -> dict[str, Any]:
    """Play ``feeds`` through the bundle's models for ``duration_s`` s; the run's JSON record.

    ``memory_budget``: ``min``/``50``/``75``/``all`` (levels of DESIGN.md §7) or a size.
    ``order``: ``merge`` (queries sharing blocks adjacent) or ``given`` (the feeds' order).
    ``sharing``: ``time`` (round-robin, swapping) or ``space`` (fixed slices, concurrent;
    :mod:`gemel.edge.space`). ``max_batch`` caps the batch sizes (from 1, 2, 4, 8).
    ``live_updates``: adopt newer bundles published in ``bundle_dir`` while running (time
    sharing only); each adoption is reported under ``updates``.
    """
    dev = check_device(device)
    manifest = read_manifest(bundle_dir)
    check_request(manifest, feeds, eviction=eviction, order=order, sharing=sharing)
    if live_updates and sharing != "time":
        raise GemelError("live bundle updates need time sharing (--sharing time)")
    if profile is None:
        profile = profile_bundle(bundle_dir, str(dev), repeats=2, frame_size=frame_sizes(feeds))
    names = list(feeds)
    layout = lay_out(
        manifest, profile, names, memory_budget=memory_budget, eviction=eviction, order=order
    )
    for q in names:
        layout.blocks.check_fits(q, 0)
    # room for a newer bundle's blocks beside the old ones while adopting it
    spare = 2 if live_updates else 1
    needed = sum(b.nbytes for b in layout.blocks.blocks.values())
    arena = min(spare * needed, max(0, layout.budget_bytes - profile.overhead_bytes))
    models = load_bundle(bundle_dir)
    executor = TorchExecutor(
        bundle_dir,
        manifest,
        {q: models[q] for q in manifest.queries},
        device=dev,
        arena_bytes=arena,
        prepare=lambda q, frames: feeds[q].batch(frames),
        answer=lambda q, model, x: feeds[q].answers(model, x),
    )
    streams = {q: Stream(q, f.fps, f.sla_s, f.frames_total) for q, f in feeds.items()}
    watcher = BundleWatcher(bundle_dir, manifest, pin=executor.cuda) if live_updates else None
    with watcher or contextlib.nullcontext():
        result = play(
            layout, streams, executor, WallClock(), profile.cost_model(),  # starts after set-up
            duration_s=duration_s, sharing=sharing, prefetch=prefetch, max_batch=max_batch,
            updates=watcher, on_turn=status,
        )  # fmt: skip
    return play_record(
        result, streams, feeds, manifest, layout,
        sharing=sharing, prefetch=prefetch, device=str(dev), mode="runtime",
    )  # fmt: skip

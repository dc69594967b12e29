"""``gemel simulate``: the runtime's scheduler and block manager on a virtual clock.

Durations come from a measured profile and answers from per-frame prediction records (what
each bundle's model outputs on each test frame), scored by the one stream-accuracy rule. One
profile serves every bundle of a workload: run times are per query (the same architecture in
every bundle) and a block the profile does not list loads at the profiled bandwidth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gemel.edge.blocks import BlockManager
from gemel.edge.engine import EdgeEngine, VirtualClock
from gemel.edge.eviction import BEST_POLICY, make_policy
from gemel.edge.executor import manifest_blocks
from gemel.edge.feeds import QueryFeed
from gemel.edge.levels import profile_levels, resolve_budget
from gemel.edge.profile import Profile
from gemel.edge.replay import ReplayExecutor
from gemel.edge.runtime import bundle_strategy, check_feeds, check_modes
from gemel.edge.scheduler import BATCH_SIZES, TimeSharingScheduler, batch_sizes, merge_aware_order
from gemel.edge.space import SpaceSharingEngine
from gemel.edge.streams import Stream
from gemel.edge.summary import run_record
from gemel.errors import GemelError
from gemel.merge.bundle import BundleManifest, load_bundle, read_manifest

Predictions = dict[str, list[Any]]
"""query -> the model's answer on each frame of its stream (``None``: a bad frame)"""


def record_predictions(
    bundle_dir: str | Path, feeds: Mapping[str, QueryFeed], *, batch_size: int = 32
) -> Predictions:
    """Run each query's model of the bundle over its whole stream (on the CPU, untimed)."""
    models = load_bundle(bundle_dir)
    out: Predictions = {}
    for q, feed in feeds.items():
        if q not in models:
            raise GemelError(f"{bundle_dir}: the bundle has no model for query {q!r}")
        preds: list[Any] = [None] * feed.frames_total
        for start in range(0, feed.frames_total, batch_size):
            x, kept = feed.batch(list(range(start, min(start + batch_size, feed.frames_total))))
            if x is None:
                continue
            with torch.inference_mode():
                answers = feed.answers(models[q], x)
            for i, a in zip(kept, answers, strict=True):
                preds[i] = a
        out[q] = preds
    return out


def check_profile(profile: Profile, queries: Sequence[str]) -> None:
    missing = [q for q in queries if q not in profile.queries]
    if missing:
        raise GemelError(f"the profile has no figures for query {missing[0]!r}")


def simulate_bundle(
    manifest: BundleManifest,
    profile: Profile,
    feeds: Mapping[str, QueryFeed],
    predictions: Predictions,
    *,
    memory_budget: str | int = "all",
    duration_s: float = 30.0,
    eviction: str = BEST_POLICY,
    order: str = "merge",
    sharing: str = "time",
    prefetch: bool = True,
    max_batch: int = max(BATCH_SIZES),
    fps: float | None = None,
    on_turn: Callable[[EdgeEngine, float], None] | None = None,
) -> dict[str, Any]:
    """Simulate one bundle; the run's JSON record (the same keys as ``gemel run``'s).

    ``fps`` overrides every stream's rate (for sweeps); frames are then replayed at the new
    rate from the same records (frame ``k`` keeps its answer and its truth).
    """
    check_feeds(manifest, feeds)
    names = list(feeds)
    check_profile(profile, names)
    policy = make_policy(eviction)
    check_modes(order, sharing)
    level, budget = resolve_budget(str(memory_budget), profile_levels(profile, names))
    blocks = [b for b in manifest_blocks(manifest) if b.queries & set(names)]
    bm = BlockManager(blocks, budget, policy, overhead_bytes=profile.overhead_bytes)
    clock = VirtualClock()
    executor = ReplayExecutor(clock, profile, predictions, bm.blocks_of)
    streams = {
        q: Stream(q, fps or f.fps, f.sla_s, min(f.frames_total, len(predictions[q])))
        for q, f in feeds.items()
    }
    sched_order = merge_aware_order(names, bm.blocks_of) if order == "merge" else names
    if sharing == "space":
        space = SpaceSharingEngine(
            streams, sched_order, bm, executor, clock, profile.cost_model(),
            batch_sizes=batch_sizes(max_batch),
        )  # fmt: skip
        result = space.run(duration_s)
    else:
        engine = EdgeEngine(
            streams, TimeSharingScheduler(sched_order), bm, executor, clock,
            profile.cost_model(), prefetch=prefetch, batch_sizes=batch_sizes(max_batch),
            learn=False,
        )  # fmt: skip
        result = engine.run(duration_s, on_turn=on_turn)
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
        device=profile.device,
        mode="simulated",
        fps=fps,
    )


def simulate_bundles(
    bundles: Sequence[str | Path],
    profile: Profile,
    feeds: Mapping[str, QueryFeed],
    *,
    memory_budgets: Sequence[str] = ("min", "50", "75"),
    fps_values: Sequence[float | None] = (None,),
    sharing: Sequence[str] = ("time",),
    duration_s: float = 30.0,
    eviction: str = BEST_POLICY,
    predictions: Mapping[str, Predictions] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Every bundle at every budget, fps and sharing mode, side by side; predictions are
    recorded once per bundle (or taken from ``predictions``, keyed by bundle path)."""
    runs = []
    for bundle in bundles:
        manifest = read_manifest(bundle)
        preds = (predictions or {}).get(str(bundle)) or record_predictions(bundle, feeds)
        for mode in sharing:
            for budget in memory_budgets:
                for fps in fps_values:
                    if progress is not None:
                        rate = f" {fps:g} fps" if fps else ""
                        progress(f"{bundle_strategy(manifest)} {mode} @ {budget}{rate}")
                    run = simulate_bundle(
                        manifest, profile, feeds, preds, memory_budget=budget,
                        duration_s=duration_s, eviction=eviction, fps=fps, sharing=mode,
                    )  # fmt: skip
                    run["bundle"] = str(bundle)
                    runs.append(run)
    return runs

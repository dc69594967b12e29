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

from gemel.choices import BEST_EVICTION_POLICY
from gemel.edge.engine import VirtualClock
from gemel.edge.feeds import QueryFeed
from gemel.edge.play import OnTurn, bundle_strategy, check_request, lay_out, play, play_record
from gemel.edge.profile import Profile
from gemel.edge.replay import ReplayExecutor
from gemel.edge.scheduler import BATCH_SIZES
from gemel.edge.streams import Stream
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
    """Refuse a profile that lacks figures for one of ``queries``."""
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
    eviction: str = BEST_EVICTION_POLICY,
    order: str = "merge",
    sharing: str = "time",
    prefetch: bool = True,
    max_batch: int = max(BATCH_SIZES),
    fps: float | None = None,
    on_turn: OnTurn | None = None,
) -> dict[str, Any]:
    """Simulate one bundle; the run's JSON record (the same keys as ``gemel run``'s).

    ``fps`` overrides every stream's rate (for sweeps); frames are then replayed at the new
    rate from the same records (frame ``k`` keeps its answer and its truth).
    """
    check_request(manifest, feeds, eviction=eviction, order=order, sharing=sharing)
    names = list(feeds)
    check_profile(profile, names)
    layout = lay_out(
        manifest, profile, names, memory_budget=memory_budget, eviction=eviction, order=order
    )
    clock = VirtualClock()
    executor = ReplayExecutor(clock, profile, predictions, layout.blocks.blocks_of)
    streams = {
        q: Stream(q, fps or f.fps, f.sla_s, min(f.frames_total, len(predictions[q])))
        for q, f in feeds.items()
    }
    result = play(
        layout, streams, executor, clock, profile.cost_model(), duration_s=duration_s,
        sharing=sharing, prefetch=prefetch, max_batch=max_batch, learn=False, on_turn=on_turn,
    )  # fmt: skip
    return play_record(
        result, streams, feeds, manifest, layout,
        sharing=sharing, prefetch=prefetch, device=profile.device, mode="simulated", fps=fps,
    )  # fmt: skip


def simulate_bundles(
    bundles: Sequence[str | Path],
    profile: Profile,
    feeds: Mapping[str, QueryFeed],
    *,
    memory_budgets: Sequence[str] = ("min", "50", "75"),
    fps_values: Sequence[float | None] = (None,),
    sharing: Sequence[str] = ("time",),
    duration_s: float = 30.0,
    eviction: str = BEST_EVICTION_POLICY,
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

"""The simulator: same scheduler and block manager, profiled durations, replayed answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_tiny import stream_workload, tiny_bundle
from gemel.data.tasks import make_task
from gemel.edge.feeds import QueryFeed, workload_feeds
from gemel.edge.profile import BatchCost, Profile, QueryProfile
from gemel.edge.profiler import profile_bundle
from gemel.edge.runtime import run_bundle
from gemel.edge.simulate import record_predictions, simulate_bundle, simulate_bundles
from gemel.merge.bundle import read_manifest
from gemel.workload import TaskSpec, Workload, workload_from_dict

NAMES = ["a", "b", "c"]


pytestmark = pytest.mark.usefixtures("module_cache")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workload, Path, Path, Profile]:
    wl = workload_from_dict(stream_workload(NAMES, fps=20, sla_ms=200, frames=300, width=4096))
    root = tmp_path_factory.mktemp("sim")
    none = tiny_bundle(root / "none", NAMES, merged=False, workload=wl)
    merged = tiny_bundle(root / "gemel", NAMES, merged=True, workload=wl)
    frame_size = {q: (32, 32) for q in NAMES}
    return wl, none, merged, profile_bundle(none, "cpu", repeats=3, frame_size=frame_size)


def test_budget_holding_everything_means_no_swaps_and_no_constraint(setup) -> None:
    wl, none, _, profile = setup
    feeds = workload_feeds(wl, NAMES, 3.0)
    preds = record_predictions(none, feeds)
    manifest = read_manifest(none)
    fits = simulate_bundle(manifest, profile, feeds, preds, memory_budget="all", duration_s=3)
    free = simulate_bundle(manifest, profile, feeds, preds, memory_budget="1GiB", duration_s=3)
    assert fits["swaps"] == 0 and fits["copied_bytes"] == sum(b.nbytes for b in manifest.blocks)
    assert fits["queries"] == free["queries"]
    low = simulate_bundle(manifest, profile, feeds, preds, memory_budget="min", duration_s=3)
    assert low["swaps"] > 0


def test_simulator_predicts_the_real_cpu_runtime(setup) -> None:
    """Tolerance: 0.1 absolute on each query's fraction of frames processed and accuracy."""
    wl, none, merged, profile = setup
    for bundle in (none, merged):
        feeds = workload_feeds(wl, NAMES, 2.0)
        real = run_bundle(bundle, feeds, memory_budget="min", duration_s=2.0, profile=profile)
        preds = record_predictions(bundle, feeds)
        sim = simulate_bundle(
            read_manifest(bundle), profile, feeds, preds, memory_budget="min", duration_s=2.0
        )
        assert sim["budget_bytes"] == real["budget_bytes"]
        for q in NAMES:
            r, s = real["queries"][q], sim["queries"][q]
            assert r["frames_total"] == s["frames_total"] == 40
            processed = (r["frames_processed"] - s["frames_processed"]) / r["frames_total"]
            assert abs(processed) <= 0.1, (q, r, s)
            assert abs(r["accuracy"] - s["accuracy"]) <= 0.1, (q, r, s)


def test_side_by_side_runs_carry_the_contract_keys(setup) -> None:
    wl, none, merged, profile = setup
    feeds = workload_feeds(wl, NAMES, 2.0)
    runs = simulate_bundles([none, merged], profile, feeds, duration_s=2.0)
    assert [(r["strategy"], r["memory_level"]) for r in runs] == [
        (s, level) for s in ("none", "gemel") for level in ("min", "50", "75")
    ]
    for r in runs:
        for key in ("budget_bytes", "sharing", "eviction", "order", "swaps", "swap_bytes"):
            assert key in r
        assert set(r["queries"]) == set(NAMES)
        json.dumps(r)
    by = {(r["strategy"], r["memory_level"]): r for r in runs}
    assert by[("gemel", "min")]["swap_bytes"] < by[("none", "min")]["swap_bytes"]


def test_ten_minutes_of_six_streams_swap_every_turn_and_keep_up(tmp_path: Path) -> None:
    """At ``min`` one query's block fits: every turn after the first six loads is a swap. A turn
    (10.5 ms copy + 5 ms run + 0.1 ms overhead) times six queries stays under the 100 ms
    between frames, so every frame is answered by its own result. (The simulator's speed on
    this run is measured by ``benchmarks/bench_edge.py``.)"""
    names = [f"q{i}" for i in range(6)]
    manifest = read_manifest(tiny_bundle(tmp_path / "b", names, merged=False))
    task = make_task(TaskSpec(kind="presence", classes=["car"]))
    n = 6000  # 10 minutes at 10 fps
    feeds = {
        q: QueryFeed(q, 10.0, 0.5, [None] * n, torch.randint(0, 2, (n,)), task,
                     manifest.queries[q].model)
        for q in names
    }  # fmt: skip
    preds = {q: [i % 2 for i in range(n)] for q in names}
    block_bytes = {b.nbytes for b in manifest.blocks}
    assert len(block_bytes) == 1 and len(manifest.blocks) == 6  # one private block per query
    (nbytes,) = block_bytes
    profile = Profile(
        device="reference", overlap_copies=True, overhead_bytes=0, overhead_s=1e-4,
        load_bytes_per_s=2e6, blocks={},
        queries={
            q: QueryProfile(
                weight_bytes=sum(b.nbytes for b in manifest.blocks_of(q)),
                batches={b: BatchCost(run_s=0.004 * (1 + b / 4), activation_bytes=1000 * b)
                         for b in (1, 2, 4, 8)},
            )
            for q in names
        },
    )  # fmt: skip
    assert 6 * (nbytes / 2e6 + 0.005 + 1e-4) < 0.1
    run = simulate_bundle(manifest, profile, feeds, preds, memory_budget="min", duration_s=600)
    assert run["budget_bytes"] == nbytes + 1000 and run["peak_bytes"] <= run["budget_bytes"]
    batches = sum(v["batches"] for v in run["queries"].values())
    assert run["swaps"] == batches - 6
    assert run["swap_bytes"] == run["swaps"] * nbytes
    assert run["copied_bytes"] == run["swap_bytes"] + 6 * nbytes
    for q, v in run["queries"].items():
        assert v["frames_total"] == v["frames_processed"] == v["batches"] == n
        truth = feeds[q].targets.tolist()
        expected = sum(p == t for p, t in zip(preds[q], truth, strict=True)) / n
        assert v["accuracy"] == pytest.approx(expected)


def test_space_sharing_admits_what_fits_and_never_swaps(setup) -> None:
    wl, none, merged, profile = setup
    feeds = workload_feeds(wl, NAMES, 2.0)
    served = {}
    for bundle in (none, merged):
        preds = record_predictions(bundle, feeds)
        manifest = read_manifest(bundle)
        for level in ("50", "1GiB"):
            run = simulate_bundle(
                manifest, profile, feeds, preds, memory_budget=level, duration_s=2.0,
                sharing="space",
            )  # fmt: skip
            assert run["sharing"] == "space" and run["swaps"] == 0
            assert run["peak_bytes"] <= run["budget_bytes"]
            served[(bundle.name, level)] = [
                q for q, v in run["queries"].items() if v["frames_processed"] > 0
            ]
    assert served[("none", "1GiB")] == NAMES and served[("gemel", "1GiB")] == NAMES
    # halfway between one model and all of them: one unmerged model and its activations fit,
    # while the merged models hold one copy of the weights and fit side by side
    assert len(served[("none", "50")]) == 1
    assert served[("gemel", "50")] == NAMES


def test_space_sharing_on_the_real_runtime(setup) -> None:
    wl, _, merged, profile = setup
    feeds = workload_feeds(wl, NAMES, 1.5)
    run = run_bundle(
        merged, feeds, memory_budget="1GiB", duration_s=1.5, sharing="space", profile=profile
    )
    assert run["sharing"] == "space" and run["swaps"] == 0
    assert all(v["frames_processed"] >= 20 for v in run["queries"].values()), run["queries"]

"""The real CPU runtime on small synthetic streams: budget, swaps, merging, robustness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_tiny import stream_workload, tiny_bundle
from gemel.edge.blocks import BlockManager
from gemel.edge.feeds import workload_feeds
from gemel.edge.runtime import run_bundle
from gemel.errors import GemelError
from gemel.merge.bundle import read_manifest
from gemel.workload import Workload, workload_from_dict

NAMES = ["a", "b", "c"]


pytestmark = pytest.mark.usefixtures("module_cache")


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workload, Path, Path]:
    """Models whose weights (~9 MiB each) cost more to copy than to run."""
    wl = workload_from_dict(stream_workload(NAMES, fps=100, sla_ms=60, frames=500, width=65536))
    root = tmp_path_factory.mktemp("wide")
    none = tiny_bundle(root / "none", NAMES, merged=False, workload=wl)
    merged = tiny_bundle(root / "gemel", NAMES, merged=True, workload=wl)
    return wl, none, merged


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workload, Path]:
    wl = workload_from_dict(stream_workload(NAMES, fps=20, sla_ms=200, frames=200))
    return wl, tiny_bundle(tmp_path_factory.mktemp("small") / "b", NAMES, merged=True, workload=wl)


def test_budget_is_never_exceeded_at_any_load(
    wide: tuple[Workload, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    wl, none, _ = wide
    seen: list[tuple[int, int]] = []
    original = BlockManager._load

    def checked(self: BlockManager, block, plan) -> None:
        original(self, block, plan)
        seen.append((self.used_bytes, self.budget_bytes))

    monkeypatch.setattr(BlockManager, "_load", checked)
    feeds = workload_feeds(wl, NAMES, 1.0)
    record = run_bundle(none, feeds, memory_budget="min", duration_s=1.0)
    assert len(seen) > len(NAMES)  # it had to swap
    assert all(used <= budget for used, budget in seen)
    assert record["peak_bytes"] <= record["budget_bytes"]
    assert record["swaps"] > 0 and record["swap_bytes"] > 0


def test_everything_fits_no_swaps_after_first_load(small: tuple[Workload, Path]) -> None:
    wl, bundle = small
    feeds = workload_feeds(wl, NAMES, 1.5)
    record = run_bundle(bundle, feeds, memory_budget="all", duration_s=1.5)
    total = sum(b.nbytes for b in read_manifest(bundle).blocks)
    assert record["swaps"] == 0 and record["swap_bytes"] == 0
    assert record["copied_bytes"] == total
    for v in record["queries"].values():
        assert v["frames_total"] == 30
        assert v["frames_processed"] >= 27  # 20 fps is far below what tiny models serve
        assert 0.0 <= v["accuracy"] <= 1.0


def test_merging_processes_at_least_as_many_frames_at_min(
    wide: tuple[Workload, Path, Path],
) -> None:
    wl, none, merged = wide
    records = []
    for bundle in (none, merged):
        feeds = workload_feeds(wl, NAMES)
        for f in feeds.values():  # 1000 fps, one frame per turn: the swap decides throughput
            f.images = f.images * 10
            f.targets = f.targets.repeat(10)
            f.fps = 1000.0
        records.append(run_bundle(bundle, feeds, memory_budget="min", duration_s=0.8, max_batch=1))
    base, mine = records
    assert mine["budget_bytes"] == base["budget_bytes"]  # levels come from unmerged models
    assert mine["swap_bytes"] < base["swap_bytes"]
    processed = [sum(v["frames_processed"] for v in r["queries"].values()) for r in records]
    assert processed[1] >= processed[0], processed


def test_bad_frame_short_source_and_overload_leave_other_streams_running(
    small: tuple[Workload, Path],
) -> None:
    wl, bundle = small
    feeds = workload_feeds(wl, NAMES, 1.5)
    for f in feeds.values():  # 20,000 frames per second, one per batch: far beyond the CPU
        f.images = f.images * 400
        f.targets = f.targets.repeat(400)
        f.fps = 20000.0
    feeds["a"].images[3] = None  # unreadable
    feeds["a"].images[4] = np.zeros((5, 5), dtype=np.uint8)  # ill-shaped
    feeds["b"].images = feeds["b"].images[:2000]  # the source ends after 0.1 s
    feeds["b"].targets = feeds["b"].targets[:2000]
    ends: list[float] = []  # when each batch finished, on the run's clock
    record = run_bundle(
        bundle, feeds, memory_budget="min", duration_s=0.6, max_batch=1,
        status=lambda engine, now: ends.append(now),
    )  # fmt: skip
    # the run stops at 0.6 s: only the batch under way then finishes later, no backlog drains
    assert len(ends) == sum(v["batches"] for v in record["queries"].values())
    assert sum(t > 0.6 for t in ends) <= 1, ends[-5:]
    q = record["queries"]
    assert q["b"]["frames_total"] == 2000
    assert q["a"]["frames_total"] == q["c"]["frames_total"] == 12000
    assert q["a"]["frames_processed"] > 20 and q["c"]["frames_processed"] > 20, q
    assert q["a"]["frames_processed"] < q["a"]["frames_total"] // 4, q  # overloaded: dropped


def test_a_query_that_cannot_fit_is_a_clear_error(small: tuple[Workload, Path]) -> None:
    wl, bundle = small
    feeds = workload_feeds(wl, NAMES, 0.5)
    with pytest.raises(GemelError, match=r"needs .* budget is 1.0 KiB"):
        run_bundle(bundle, feeds, memory_budget="1KiB", duration_s=0.5)

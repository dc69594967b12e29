"""Edge benchmarks on the CPU: scheduler + block-manager overhead per batch, simulator speed,
and the copy path (block-by-block swap-in against one flat copy and per-tensor copies).

Usage: python benchmarks/bench_edge.py [--device cpu] [--arch resnet18] [--json OUT]

1. Bookkeeping: the engine with an executor that does nothing, on a virtual clock, over a
   merged six-query block layout (six private blocks, four shared ones) under a budget that
   forces evictions; the wall time of the scheduler and the block manager per batch, for each
   eviction policy (target < 0.5 ms).
2. Simulator speed: ten minutes of six 10 fps streams (target < 5 s).
3. Copy path: a bundle of three unmerged ``--arch`` models; loading one query's blocks into
   the arena (what a swap does) against one flat copy of the same bytes, and against copying
   the same tensors one by one (what ``module.to`` or ``load_state_dict`` does). On a GPU the
   host store is pinned and the target is >= 0.85 of the flat copy (``gpu_checks.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gemel.data.tasks import make_task
from gemel.edge.blocks import Block, BlockManager, LoadPlan
from gemel.edge.engine import EdgeEngine, VirtualClock
from gemel.edge.eviction import make_policy
from gemel.edge.executor import TorchExecutor, manifest_blocks
from gemel.edge.feeds import QueryFeed
from gemel.edge.profile import BatchCost, Profile, QueryProfile
from gemel.edge.profiler import bundle_answers
from gemel.edge.scheduler import CostModel, TimeSharingScheduler
from gemel.edge.simulate import simulate_bundle
from gemel.edge.streams import Stream
from gemel.merge import MergeConfig, load_bundle, read_manifest, save_bundle
from gemel.models import build_model, check_device
from gemel.workload import TaskSpec, workload_from_dict

MiB = 1 << 20


class BookkeepingOnly:
    """An executor that moves nothing and advances a virtual clock 1 ms per batch, so a run
    measures the scheduler's and the block manager's own time."""

    swap_s = 0.0

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def apply(self, plan: LoadPlan, *, background: bool = False) -> None:
        pass

    def run(self, query: str, frames: list[int]) -> list[tuple[int, Any]]:
        self.clock.advance(1e-3)
        return [(i, 0) for i in frames]


def bookkeeping_seconds_per_batch(
    blocks: Sequence[Block],
    budget_bytes: int,
    *,
    policy: str = "schedule",
    duration_s: float = 20.0,
    fps: float = 30.0,
) -> list[float]:
    """Per-batch time of the scheduler and the block manager alone, for every batch of a
    ``duration_s`` run (the budget decides how much evicting they do)."""
    queries = sorted({q for b in blocks for q in b.queries})
    clock = VirtualClock()
    executor = BookkeepingOnly(clock)
    bm = BlockManager(blocks, budget_bytes, make_policy(policy))
    cost = CostModel(
        run_s={q: {1: 1e-3, 8: 8e-3} for q in queries},
        activation_bytes={q: {1: 0} for q in queries},
        load_bytes_per_s=1e9,
    )
    streams = {q: Stream(q, fps, 0.5, int(duration_s * fps)) for q in queries}
    engine = EdgeEngine(
        streams, TimeSharingScheduler(list(queries)), bm, executor, clock, cost, learn=False
    )
    return engine.run(duration_s).sched_overhead_s


def merged_layout() -> list[Block]:
    """Six queries: private blocks of 10-40 MiB, and shared blocks over pairs and triples."""
    qs = [f"q{i}" for i in range(6)]
    blocks = [Block(f"p{i}", (10 + 6 * i) * MiB, frozenset({q})) for i, q in enumerate(qs)]
    shared = [({"q0", "q1"}, 40), ({"q2", "q3", "q4"}, 60), ({"q4", "q5"}, 30), (set(qs), 20)]
    blocks += [Block(f"s{i}", n * MiB, frozenset(s)) for i, (s, n) in enumerate(shared)]
    return blocks


def bench_bookkeeping() -> dict:
    blocks = merged_layout()
    need = max(
        sum(b.nbytes for b in blocks if q in b.queries)
        for q in {q for b in blocks for q in b.queries}
    )
    out = {}
    for policy in ("lru", "mru", "schedule"):
        per_batch = bookkeeping_seconds_per_batch(
            blocks, need + 30 * MiB, policy=policy, duration_s=60.0
        )
        a = np.asarray(per_batch) * 1000
        out[policy] = {
            "batches": len(a),
            "median_ms": float(np.median(a)),
            "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()),
        }
    return out


def bench_simulator(tmp: Path) -> dict:
    names = [f"q{i}" for i in range(6)]
    wl = workload_from_dict(
        {"name": "six", "queries": [
            {"name": q, "model": {"arch": "resnet18", "num_classes": 2}} for q in names]}
    )  # fmt: skip
    torch.manual_seed(0)
    models = {q.name: build_model(q.model) for q in wl.queries}
    save_bundle(tmp / "six", models, workload=wl, config=MergeConfig())
    manifest = read_manifest(tmp / "six")
    task = make_task(TaskSpec(kind="presence", classes=["car"]))
    n = 6000
    feeds = {
        q: QueryFeed(q, 10.0, 0.5, [None] * n, torch.randint(0, 2, (n,)), task,
                     manifest.queries[q].model)
        for q in names
    }  # fmt: skip
    preds = {q: [i % 2 for i in range(n)] for q in names}
    profile = Profile(
        device="H200 figures (DESIGN.md)", overlap_copies=True, overhead_bytes=500 * MiB,
        overhead_s=1e-4, load_bytes_per_s=55.4e9, blocks={},
        queries={
            q: QueryProfile(
                weight_bytes=sum(b.nbytes for b in manifest.blocks_of(q)),
                batches={b: BatchCost(run_s=0.0019 + 0.00003 * b, activation_bytes=45 * MiB * b)
                         for b in (1, 2, 4, 8)},
            )
            for q in names
        },
    )  # fmt: skip
    out = {}
    for level in ("min", "all"):
        t0 = time.perf_counter()
        run = simulate_bundle(manifest, profile, feeds, preds, memory_budget=level, duration_s=600)
        out[level] = {"seconds": time.perf_counter() - t0, "swaps": run["swaps"]}
    return out


def bench_copies(tmp: Path, device: str, arch: str, repeats: int = 11) -> dict:
    dev = check_device(device)
    names = ["a", "b", "c"]
    wl = workload_from_dict(
        {"name": "copy", "queries": [
            {"name": q, "model": {"arch": arch, "num_classes": 10}} for q in names]}
    )  # fmt: skip
    torch.manual_seed(0)
    models = {q.name: build_model(q.model) for q in wl.queries}
    save_bundle(tmp / "copy", models, workload=wl, config=MergeConfig())
    manifest = read_manifest(tmp / "copy")
    blocks = [b for b in manifest_blocks(manifest) if "a" in b.queries]
    nbytes = sum(b.nbytes for b in blocks)
    ex = TorchExecutor(
        tmp / "copy", manifest, load_bundle(tmp / "copy"), device=dev, arena_bytes=nbytes,
        prepare=lambda q, f: (None, []), answer=bundle_answers(manifest),
    )  # fmt: skip
    src_tensors = [t.detach() for t in models["a"].state_dict().values()]
    if dev.type == "cuda":
        src_tensors = [t.pin_memory() for t in src_tensors]
    dst_tensors = [torch.empty_like(t, device=dev) for t in src_tensors]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(*fns) -> list[float]:
        """Median seconds of each function, calls interleaved so drift hits all alike."""
        times: list[list[float]] = [[] for _ in fns]
        for k in range(repeats + 1):
            for fn, acc in zip(fns, times, strict=True):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                if k:  # the first round warms up
                    acc.append(time.perf_counter() - t0)
        return [statistics.median(t) for t in times]

    def swap_in() -> None:
        ex.apply(LoadPlan("a", evict=blocks))
        ex.apply(LoadPlan("a", load=blocks))

    first = manifest.blocks_of("a")[0]
    flat_src = ex.host.range(first.offset, nbytes)
    flat_dst = ex.arena.buffer[:nbytes]

    def per_tensor() -> None:
        for s, d in zip(src_tensors, dst_tensors, strict=True):
            d.copy_(s, non_blocking=True)

    swap_s, flat_s, tensor_s = timed(
        swap_in, lambda: flat_dst.copy_(flat_src, non_blocking=True), per_tensor
    )
    return {
        "device": str(dev),
        "pinned": ex.host.pinned,
        "bytes": nbytes,
        "blocks": len(blocks),
        "swap_in_ms": swap_s * 1000,
        "flat_copy_ms": flat_s * 1000,
        "per_tensor_ms": tensor_s * 1000,
        "swap_in_fraction_of_flat": flat_s / swap_s,
        "per_tensor_fraction_of_flat": flat_s / tensor_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        results = {
            "bookkeeping": bench_bookkeeping(),
            "simulator_10min_6q": bench_simulator(Path(d)),
            "copy_path": bench_copies(Path(d), args.device, args.arch),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""``gemel profile``: measure a bundle on one device for the scheduler and the simulator.

Per block: bytes and the time of one copy from the host store into the arena. Per query and
batch size: the time of one batch through the runtime's own path (preprocessing uint8 frames,
then the query's task answering on the model: forward pass and answers) and its peak
activation memory (see :mod:`gemel.edge.measure`). The framework's fixed overhead: device
memory the framework holds beyond tensors (CUDA context; 0 on CPU, where the budget is an
accounting of weights and activations) and the per-batch time of the scheduler and the block
manager.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gemel.data import make_task
from gemel.data.preprocess import preprocess
from gemel.edge.blocks import Block, BlockManager, LoadPlan
from gemel.edge.engine import EdgeEngine, WallClock
from gemel.edge.eviction import make_policy
from gemel.edge.executor import Answer, TorchExecutor, manifest_blocks
from gemel.edge.feeds import task_answers
from gemel.edge.measure import median_seconds, peak_activation_bytes
from gemel.edge.profile import BatchCost, BlockProfile, Profile, QueryProfile
from gemel.edge.scheduler import BATCH_SIZES, CostModel, TimeSharingScheduler
from gemel.edge.streams import Stream
from gemel.errors import GemelError
from gemel.merge.bundle import BundleManifest, load_bundle, read_manifest
from gemel.models import check_device

DEFAULT_FRAME = (64, 64)


def set_threads(n: int | None) -> None:
    """Use ``n`` CPU threads for inference (None: leave PyTorch's default)."""
    if n is None:
        return
    if n < 1:
        raise GemelError(f"--threads must be at least 1, not {n}")
    torch.set_num_threads(n)


def bundle_answers(manifest: BundleManifest) -> Answer:
    """The executor's ``answer`` from the bundle alone: each query's task as its manifest
    records it, answering as the runtime does; a query saved without a task runs its forward
    pass alone (one output row per input)."""
    tasks = {q: make_task(e.task) for q, e in manifest.queries.items() if e.task is not None}

    def answer(query: str, model: nn.Module, x: torch.Tensor) -> list[Any]:
        task = tasks.get(query)
        return list(model(x)) if task is None else task_answers(task, model, x)

    return answer


def random_frames(manifest: BundleManifest, frame_size: Mapping[str, tuple[int, int]] | None):
    """A ``prepare`` function that feeds random uint8 frames of each query's frame size."""
    gen = np.random.default_rng(0)
    pools: dict[str, np.ndarray] = {}

    def prepare(query: str, frames: list[int]) -> tuple[torch.Tensor, list[int]]:
        entry = manifest.queries[query]
        if query not in pools:
            h, w = (frame_size or {}).get(query) or entry.input_size or DEFAULT_FRAME
            pools[query] = gen.integers(0, 256, (max(BATCH_SIZES), h, w, 3), dtype=np.uint8)
        pool = pools[query]
        idx = [i % len(pool) for i in frames]
        return preprocess(pool[idx], entry.model), list(frames)

    return prepare


def turn_overhead_seconds(
    executor: TorchExecutor, blocks: Sequence[Block], budget_bytes: int, *, duration_s: float = 0.5
) -> list[float]:
    """Per batch, the wall time a real runtime turn spends outside copies and the model:
    a short run of the engine on ``executor`` with streams faster than it can serve."""
    queries = sorted({q for b in blocks for q in b.queries})
    bm = BlockManager(blocks, budget_bytes, make_policy("schedule"))
    cost = CostModel(
        run_s={q: {1: 1e-3} for q in queries},
        activation_bytes={q: {1: 0} for q in queries},
        load_bytes_per_s=1e9,
    )
    streams = {q: Stream(q, 1000.0, 0.5, int(duration_s * 1000)) for q in queries}
    engine = EdgeEngine(
        streams, TimeSharingScheduler(list(queries)), bm, executor, WallClock(), cost,
        batch_sizes=(1,), learn=False,
    )  # fmt: skip
    return engine.run(duration_s).turn_overhead_s


def framework_overhead_bytes(device: torch.device) -> int:
    """Device memory held beyond PyTorch's own allocations (CUDA context, libraries)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    return max(0, total - free - torch.cuda.memory_reserved(device))


def profile_bundle(
    bundle_dir: str | Path,
    device: str = "cpu",
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    repeats: int = 5,
    frame_size: Mapping[str, tuple[int, int]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Measure ``bundle_dir`` on ``device`` (see the module docstring for what and how)."""
    dev = check_device(device)
    manifest = read_manifest(bundle_dir)
    blocks = manifest_blocks(manifest)
    total = sum(b.nbytes for b in blocks)
    ex = TorchExecutor(
        bundle_dir,
        manifest,
        load_bundle(bundle_dir),
        device=dev,
        arena_bytes=total,
        prepare=random_frames(manifest, frame_size),
        answer=bundle_answers(manifest),
    )
    say = progress or (lambda _m: None)

    say("block copies")
    block_profiles = {}
    for b in blocks:
        plan = LoadPlan("", load=[b])
        evict = LoadPlan("", evict=[b])

        def copy_once(plan: LoadPlan = plan, evict: LoadPlan = evict) -> None:
            ex.apply(evict)
            ex.apply(plan)

        block_profiles[b.id] = BlockProfile(
            nbytes=b.nbytes, load_s=median_seconds(copy_once, dev, repeats=repeats)
        )
    flat_src = ex.host.range(manifest.blocks[0].offset, total) if blocks else None
    flat_dst = ex.arena.buffer[:total]
    flat_s = median_seconds(lambda: flat_dst.copy_(flat_src, non_blocking=True), dev)
    for b in blocks:  # everything resident for the model timings
        if b.id not in ex.arena.ranges:
            ex.apply(LoadPlan("", load=[b]))

    queries = {}
    for q in manifest.queries:
        say(f"query {q}")
        batches = {}
        for bs in batch_sizes:
            frames = list(range(bs))
            run_s = median_seconds(lambda q=q, f=frames: ex.run(q, f), dev, repeats=repeats)
            x, _ = ex.prepare(q, frames)
            act = peak_activation_bytes(ex.models[q], x.to(dev), partial(ex.answer, q))
            batches[bs] = BatchCost(run_s=run_s, activation_bytes=act)
        weight = sum(b.nbytes for b in manifest.blocks_of(q))
        queries[q] = QueryProfile(weight_bytes=weight, batches=batches)

    say("turn overhead")
    ex.apply(LoadPlan("", evict=blocks))
    overhead = turn_overhead_seconds(ex, blocks, total)
    return Profile(
        device=str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        overlap_copies=dev.type == "cuda",
        overhead_bytes=framework_overhead_bytes(dev),
        overhead_s=statistics.median(overhead) if overhead else 0.0,
        load_bytes_per_s=total / flat_s if flat_s > 0 else float("inf"),
        flat_copy_s=flat_s,
        pinned=ex.host.pinned,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        torch=torch.__version__,
        blocks=block_profiles,
        queries=queries,
    )

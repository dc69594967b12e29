"""The real executor: arena views, one copy per block load, plain forwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_tiny import stream_workload, tiny_bundle
from gemel.edge.blocks import BlockManager, LoadPlan
from gemel.edge.eviction import make_policy
from gemel.edge.executor import TorchExecutor, manifest_blocks
from gemel.edge.feeds import workload_feeds
from gemel.edge.profiler import bundle_answers
from gemel.edge.simulate import record_predictions
from gemel.merge.bundle import load_bundle, read_manifest
from gemel.workload import workload_from_dict

NAMES = ["a", "b", "c"]


def make_executor(bundle: Path, arena_bytes: int, inputs: torch.Tensor) -> TorchExecutor:
    manifest = read_manifest(bundle)
    return TorchExecutor(
        bundle,
        manifest,
        load_bundle(bundle),
        device="cpu",
        arena_bytes=arena_bytes,
        prepare=lambda q, frames: (inputs[frames], list(frames)),
        answer=lambda q, model, x: list(model(x).clone()),
    )


def test_swapped_models_compute_what_the_bundle_models_compute(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path / "b", NAMES, merged=True)
    manifest = read_manifest(bundle)
    blocks = manifest_blocks(manifest)
    reference = load_bundle(bundle)
    inputs = torch.randn(4, 3, 16, 16)
    # room for the shared block and one private block at a time: every turn swaps
    shared = max(b.nbytes for b in blocks if len(b.queries) > 1)
    private = max(b.nbytes for b in blocks if len(b.queries) == 1)
    budget = shared + private + 64
    ex = make_executor(bundle, budget, inputs)
    bm = BlockManager(blocks, budget, make_policy("lru"))
    for _ in range(3):
        for q in NAMES:
            plan = bm.acquire(q, 0, NAMES)
            assert bm.used_bytes <= budget
            ex.apply(plan)
            got = torch.stack([p for _, p in ex.run(q, [0, 1, 2, 3])])
            bm.release(q)
            with torch.inference_mode():
                want = reference[q](inputs)
            torch.testing.assert_close(got, want)
    assert bm.evictions > 0
    assert ex.copied_bytes == bm.load_bytes
    assert ex.swap_s > 0


def test_parameters_point_into_the_arena_and_shared_ones_once(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path / "b", NAMES, merged=True)
    manifest = read_manifest(bundle)
    blocks = manifest_blocks(manifest)
    total = sum(b.nbytes for b in blocks)
    ex = make_executor(bundle, total, torch.randn(1, 3, 16, 16))
    bm = BlockManager(blocks, total, make_policy("lru"))
    for q in NAMES:
        ex.apply(bm.acquire(q, 0))
        bm.release(q)
    base = ex.arena.buffer.data_ptr()
    for q, model in ex.models.items():
        for name, p in model.named_parameters():
            assert base <= p.data_ptr() < base + ex.arena.nbytes, (q, name)
    conv = [ex.models[q][0].weight for q in NAMES]
    assert conv[0] is conv[1] is conv[2]
    assert bm.loads == len(blocks)


def test_fragmented_arena_is_compacted_and_rebound(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path / "b", NAMES, merged=False)
    manifest = read_manifest(bundle)
    blocks = manifest_blocks(manifest)
    inputs = torch.randn(2, 3, 16, 16)
    reference = load_bundle(bundle)
    size = blocks[0].nbytes  # all private blocks have the same size
    ex = make_executor(bundle, 2 * size + 64, inputs)
    bm = BlockManager(blocks, 2 * size + 64, make_policy("mru"))
    for q in ["a", "b", "a", "c", "b", "a"]:
        ex.apply(bm.acquire(q, 0))
        got = torch.stack([p for _, p in ex.run(q, [0, 1])])
        bm.release(q)
        with torch.inference_mode():
            torch.testing.assert_close(got, reference[q](inputs))


@pytest.mark.usefixtures("module_cache")
def test_runtime_answers_a_feed_as_the_simulator_records_it(tmp_path: Path) -> None:
    wl = workload_from_dict(stream_workload(NAMES, frames=40))
    bundle = tiny_bundle(tmp_path / "b", NAMES, merged=True, workload=wl)
    manifest = read_manifest(bundle)
    feeds = workload_feeds(wl, NAMES)
    recorded = record_predictions(bundle, feeds)
    blocks = manifest_blocks(manifest)
    ex = TorchExecutor(
        bundle, manifest, load_bundle(bundle), device="cpu",
        arena_bytes=sum(b.nbytes for b in blocks),
        prepare=lambda q, frames: feeds[q].batch(frames),
        answer=lambda q, model, x: feeds[q].answers(model, x),
    )  # fmt: skip
    ex.apply(LoadPlan("", load=blocks))
    profiled = bundle_answers(manifest)
    for q, feed in feeds.items():
        frames = list(range(feed.frames_total))
        got = ex.run(q, frames)
        assert [f for f, _ in got] == frames and frames
        assert [a for _, a in got] == recorded[q]
        assert all(isinstance(a, int) for _, a in got)  # class indices as plain ints
        x, _ = feed.batch(frames)
        with torch.inference_mode():
            assert profiled(q, ex.models[q], x) == recorded[q]

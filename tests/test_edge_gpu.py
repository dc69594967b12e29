"""The edge on a CUDA device (skipped without one): arena copies on a side stream, pinned host
store, the runtime and the profiler end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from edge_tiny import stream_workload, tiny_bundle
from gemel.edge.blocks import BlockManager
from gemel.edge.eviction import make_policy
from gemel.edge.executor import TorchExecutor, manifest_blocks
from gemel.edge.feeds import workload_feeds
from gemel.edge.measure import peak_activation_bytes
from gemel.edge.profiler import profile_bundle
from gemel.edge.runtime import run_bundle
from gemel.merge.bundle import load_bundle, read_manifest
from gemel.workload import workload_from_dict

NAMES_GPU = ["g0", "g1", "g2"]
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def test_swaps_on_cuda_compute_what_the_cpu_models_compute(tmp_path: Path) -> None:
    wl = workload_from_dict(stream_workload(NAMES_GPU, width=4096))
    bundle = tiny_bundle(tmp_path / "b", NAMES_GPU, merged=False, workload=wl)
    manifest = read_manifest(bundle)
    blocks = manifest_blocks(manifest)
    reference = load_bundle(bundle)
    x = torch.randn(4, 3, 16, 16)
    budget = max(b.nbytes for b in blocks) + 64
    ex = TorchExecutor(
        bundle, manifest, load_bundle(bundle), device="cuda", arena_bytes=budget,
        prepare=lambda q, f: (x[f], list(f)), answer=lambda q, model, x: list(model(x).cpu()),
    )  # fmt: skip
    assert ex.host.pinned and ex.arena.buffer.is_cuda
    bm = BlockManager(blocks, budget, make_policy("lru"))
    for _ in range(2):
        for i, q in enumerate(NAMES_GPU):
            ex.apply(bm.acquire(q, 0))
            nxt = NAMES_GPU[(i + 1) % len(NAMES_GPU)]
            got = torch.stack([p for _, p in ex.run(q, [0, 1, 2, 3])])
            bm.release(q)
            ex.apply(bm.prefetch(nxt), background=True)
            with torch.inference_mode():
                torch.testing.assert_close(got, reference[q](x), rtol=1e-4, atol=1e-4)
    assert bm.evictions > 0 and ex.swap_s > 0


def test_runtime_and_profiler_on_cuda(tmp_path: Path) -> None:
    wl = workload_from_dict(stream_workload(NAMES_GPU, fps=30, frames=300))
    bundle = tiny_bundle(tmp_path / "b", NAMES_GPU, merged=True, workload=wl)
    profile = profile_bundle(bundle, "cuda", repeats=2)
    assert profile.overlap_copies and profile.load_bytes_per_s > 0
    feeds = workload_feeds(wl, NAMES_GPU, 1.0)
    record = run_bundle(
        bundle, feeds, device="cuda", memory_budget="min", duration_s=1.0, profile=profile
    )
    assert record["peak_bytes"] <= record["budget_bytes"]
    assert all(v["frames_processed"] > 0 for v in record["queries"].values())


def test_activation_bytes_on_cuda_count_the_input_batch_as_on_the_cpu() -> None:
    # the batch is allocated before the measured call, yet it occupies device memory beside
    # the activations while a batch runs: an identity model needs exactly its input
    x = torch.randn(8, 3, 16, 16, device="cuda")
    act = peak_activation_bytes(torch.nn.Identity(), x, lambda model, batch: list(model(batch)))
    assert act == x.numel() * x.element_size()

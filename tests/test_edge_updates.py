"""Live bundle updates: a runtime started on step k adopts step k+1 mid-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from edge_tiny import stream_workload, tiny_models
from gemel.analyze import analyze_models
from gemel.edge.feeds import workload_feeds
from gemel.edge.runtime import run_bundle
from gemel.merge.bundle import read_manifest, save_bundle
from gemel.merge.config import MergeConfig
from gemel.merge.tying import apply_merge
from gemel.workload import workload_from_dict

NAMES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    torch.set_num_threads(1)
    monkeypatch.setenv("GEMEL_CACHE", str(tmp_path / "cache"))
    yield


def test_runtime_adopts_a_newer_bundle_copying_only_changed_tensors(tmp_path: Path) -> None:
    wl = workload_from_dict(stream_workload(NAMES, fps=20, sla_ms=300, frames=200))
    models = tiny_models(wl)
    instances = [i for i in analyze_models(models).instances if i.queries == {"a", "b"}]
    if not instances:  # every instance spans all three queries: share it between a and b only
        instances = analyze_models({q: models[q] for q in ("a", "b")}).instances
    bundle = tmp_path / "bundle"
    save_bundle(bundle, models, workload=wl, config=MergeConfig())  # step k: nothing shared
    old = read_manifest(bundle)

    # step k+1: a and b share their first layer and were retrained (every tensor moved)
    config = MergeConfig.from_instances(instances[:1])
    apply_merge(models, config)
    with torch.no_grad():
        for q in ("a", "b"):
            for t in [*models[q].parameters(), *models[q].buffers()]:
                if t.is_floating_point():
                    t.add_(1e-3)
    step = tmp_path / "step"
    save_bundle(step, models, workload=wl, config=config)
    new = read_manifest(step)
    old_shas = {t.sha256 for t in old.tensors.values()}
    changed = sum(t.nbytes for t in new.tensors.values() if t.sha256 not in old_shas)
    assert changed > 0

    def publish() -> None:
        time.sleep(1.0)
        save_bundle(bundle, models, workload=wl, config=config)

    feeds = workload_feeds(wl, NAMES, 3.0)
    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        record = run_bundle(bundle, feeds, memory_budget="1GiB", duration_s=3.0, live_updates=True)
    finally:
        publisher.join()
    (update,) = record["updates"]
    assert update["weights"] == new.weights
    assert update["bytes_from_host"] == changed
    assert update["kept_blocks"] >= 1  # c's block did not change
    assert 0.1 < update["at_s"] < 2.9  # adopted mid-run, between batches
    assert record["swaps"] == 0
    for v in record["queries"].values():  # no stream stopped
        assert v["frames_processed"] >= 0.9 * v["frames_total"], record["queries"]

"""Training, joint retraining, evaluation, profiling and the runtime on a CUDA device (skipped
without one), for a classifier and a detector sharing backbone layers, with splits (inputs and
targets) kept on the host as everywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import torch

from detection_helpers import detection_workload_file
from gemel.analyze import analyze_models
from gemel.data import base_models, load_split, make_task
from gemel.data.train import evaluate, split_accuracy
from gemel.edge.feeds import workload_feeds
from gemel.edge.profiler import profile_bundle
from gemel.edge.runtime import run_bundle
from gemel.errors import GemelError
from gemel.merge.bundle import load_bundle
from gemel.merge.config import MergeConfig
from gemel.merge.evaluate import evaluate_bundle
from gemel.merge.run import merge_workload
from gemel.merge.trainer import JointTrainer, TrainerConfig, TrainQuery
from gemel.merge.tying import apply_merge
from gemel.workload import TaskSpec, load_workload
from merge_helpers import tiny_models

DEVICE = "cuda"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def workload_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("gpu")
    path = detection_workload_file(root, "tiny-gpu", frames=300, epochs=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(root / "cache"))
        yield path


def test_a_cuda_index_beyond_the_devices_is_refused_before_any_work(workload_path: Path) -> None:
    bad = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(GemelError, match=r"there are \d+ CUDA devices here"):
        base_models(load_workload(workload_path), device=bad)


@pytest.fixture(scope="module")
def merged(workload_path: Path) -> tuple[Path, dict]:
    out = workload_path.parent / "merged"
    wl = load_workload(workload_path)
    return out, merge_workload(wl, out, strategy="all", epochs_per_step=0.5, device=DEVICE)


def test_base_training_merging_and_evaluation_on_cuda(workload_path: Path, merged) -> None:
    out, report = merged
    assert report["steps_tried"] == 1
    for q in ("cars", "people"):
        figures = report["queries"][q]
        assert 0.0 <= figures["unmerged_accuracy"] <= 1.0
        assert 0.0 <= figures["merged_accuracy"] <= 1.0
    # the bundle was saved from the device and loads on the host; scoring it on the GPU gives
    # what the host gives (up to a few answers flipped by float differences between devices)
    wl = load_workload(workload_path)
    on_host = load_bundle(out)
    assert all(p.device.type == "cpu" for m in on_host.values() for p in m.parameters())
    on_gpu = evaluate_bundle(wl, out, device=DEVICE)["queries"]
    test = load_split(wl, "people", "test")
    assert evaluate(on_host["people"], test) == pytest.approx(
        on_gpu["people"]["accuracy"], abs=0.05
    )


def test_profile_and_runtime_on_cuda_serve_the_detector_and_the_classifier(
    workload_path: Path, merged
) -> None:
    out, _ = merged
    wl = load_workload(workload_path)
    feeds = workload_feeds(wl, wl.query_names, 2.0)
    profile = profile_bundle(out, DEVICE, repeats=1)
    budget = profile.overhead_bytes + (256 << 20)  # room for both queries side by side
    for sharing in ("time", "space"):
        record = run_bundle(
            out, feeds, device=DEVICE, memory_budget=budget, duration_s=1.0, profile=profile,
            sharing=sharing,
        )  # fmt: skip
        assert all(v["frames_processed"] > 0 for v in record["queries"].values()), sharing


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_joint_retraining_through_the_tasks_keeps_the_rng_states(device: str) -> None:
    """On CUDA, and on the CPU of a machine with CUDA (whose CUDA state must not move)."""
    models = tiny_models(("a", "b"))
    apply_merge(models, MergeConfig.from_instances(analyze_models(models).instances))
    for m in models.values():
        m.to(device)
    assert models["a"][3].weight is models["b"][3].weight  # still tied on the device
    task = make_task(TaskSpec(kind="presence", classes=("car",)))
    gen = torch.Generator().manual_seed(0)
    queries = []
    for q, channel in (("a", 0), ("b", 1)):
        x = torch.rand(128, 3, 16, 16, generator=gen)
        y = (torch.rand(128, generator=gen) < 0.5).long()  # targets stay on the host
        x[:, channel] += 0.5 * (2 * y.float() - 1)[:, None, None]
        accuracy = partial(split_accuracy, task=task)
        queries.append(
            TrainQuery(
                q, models[q], x[:96], y[:96], x[96:], y[96:], task.training_loss, accuracy, 1.01
            )
        )
    cpu_rng, cuda_rng = torch.get_rng_state(), torch.cuda.get_rng_state()
    result = JointTrainer(TrainerConfig(epochs=1, batch_size=32)).train(queries, seed=5)
    assert result.steps == 3 and result.stop != "diverged"
    assert all(0.0 <= o.accuracy <= 1.0 for o in result.queries.values())
    assert torch.equal(torch.get_rng_state(), cpu_rng)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_rng)
    assert models["a"][3].weight.device.type == device
    assert models["a"][3].weight is models["b"][3].weight

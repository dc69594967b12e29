"""The default workload (examples/demo.yaml, shipped in the package) keeps its promises."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from gemel.analyze import analyze
from gemel.data import generate, split_range
from gemel.data.dataset import query_task
from gemel.workload import SyntheticSource, load_workload

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def demo():
    return load_workload(DEMO)


def test_package_ships_the_same_file():
    shipped = resources.files("gemel") / "examples" / "demo.yaml"
    assert shipped.read_text() == DEMO.read_text()


def test_shape_of_the_workload(demo):
    sources = {name: src for name, src in demo.sources.items()}
    assert all(isinstance(s, SyntheticSource) for s in sources.values())
    assert len({s.camera for s in sources.values()}) >= 3
    kinds = {demo.task_of(q).kind for q in demo.queries}
    assert {"presence", "count", "dominant"} <= kinds
    pairs = [(q.source, demo.task_of(q).kind) for q in demo.queries]
    assert len(pairs) == len(set(pairs)), "no two queries with the same camera and task"
    families = {q.model.arch.rstrip("0123456789").split("_")[0] for q in demo.queries}
    assert len(families) >= 2
    assert all(demo.fps_of(q) and demo.sla_ms_of(q) for q in demo.queries)
    for q in demo.queries:
        query_task(demo, q.name)  # every model has its task's number of outputs


def test_stage_budget_fits_ten_minutes(demo):
    budget = demo.stage_budget_s
    assert budget is not None
    assert {"data", "train", "merge", "profile", "simulate", "run", "report"} <= set(budget)
    assert sum(budget.values()) <= 600


def test_merging_can_save_forty_percent(demo):
    analysis = analyze(demo)
    assert analysis.max_savings_bytes >= 0.4 * analysis.total_param_bytes


@pytest.mark.slow
def test_test_splits_are_not_one_sided(demo):
    # a base model must be able to beat chance by 15 points, so no answer may fill more than
    # 80% of a query's test split
    clips = {name: generate(src) for name, src in demo.sources.items()}
    for q in demo.queries:
        truths = clips[q.source].truths
        test = split_range(len(truths), demo.splits, "test")
        task = query_task(demo, q.name)
        targets = task.targets(truths[test.start : test.stop])
        assert task.chance_accuracy(targets) <= 0.8, q.name

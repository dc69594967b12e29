"""A detector and a classifier that share backbone layers: base training, joint retraining,
evaluation, the simulator and the real runtime, end to end on a 32 px shapes video.

The detector (a tiny Faster R-CNN, ``detection_helpers.tiny_detector``) finds the red squares
("car"); the classifier (``merge_helpers.tiny_net``) says whether a blue bar ("person") is in
view. The detector's backbone has exactly the classifier's three convolutions.

Bound checked: each query's merged accuracy on the test split is at least its target (95% of
its unmerged test accuracy; mAP@0.5 for the detector). Why it holds: the planner accepts a
step only when every retrained query reaches 95% of its unmerged validation accuracy plus a
margin of one point, and the scene does not drift, so the validation and test splits are
alike; everything is seeded and runs on the CPU, so the run is reproducible.
"""

from __future__ import annotations

import json

import pytest

from detection_helpers import detection_workload_file
from gemel.cli import main
from gemel.merge.run import merge_workload
from gemel.workload import load_workload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workload_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection")
    path = detection_workload_file(root, "tiny-detection", frames=500, epochs=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(root / "cache"))
        yield path


@pytest.fixture(scope="module")
def merged(workload_path):
    out = workload_path.parent / "merged"
    return out, merge_workload(load_workload(workload_path), out, seed=0)


def test_merged_detector_and_classifier_meet_their_targets_on_test(merged):
    _, report = merged
    assert report["memory_after_bytes"] < report["memory_before_bytes"]
    cars, people = report["queries"]["cars"], report["queries"]["people"]
    assert cars["shares"] and people["shares"]
    assert cars["chance_accuracy"] == 0.0
    assert cars["unmerged_accuracy"] > 0.3  # the detector learned to find the squares
    assert cars["merged_metrics"]["map_50"] == cars["merged_accuracy"]
    assert 0 < cars["merged_metrics"]["map"] <= cars["merged_accuracy"]
    assert people["merged_metrics"] == {}
    for q in (cars, people):
        assert q["merged_accuracy"] >= q["target"] == pytest.approx(0.95 * q["unmerged_accuracy"])


def test_evaluate_reports_map_beside_the_accuracy(merged, workload_path):
    out, report = merged
    result = out.parent / "eval.json"
    assert main(["evaluate", str(workload_path), "--bundle", str(out), "--json", str(result)]) == 0
    cars = json.loads(result.read_text())["queries"]["cars"]
    assert (
        cars["accuracy"]
        == cars["map_50"]
        == pytest.approx(report["queries"]["cars"]["merged_accuracy"])
    )
    assert 0 < cars["map"] <= cars["map_50"]


@pytest.mark.parametrize("command", ["simulate", "run"])
def test_edge_scores_the_detection_stream(merged, workload_path, command):
    out, _ = merged
    result = out.parent / f"{command}.json"
    args = [command, str(workload_path), "--bundle", str(out), "--duration", "4s"]
    args += ["--memory-budget", "min", "--threads", "1", "--json", str(result)]
    assert main(args) == 0
    (run,) = json.loads(result.read_text())["runs"]
    cars = run["queries"]["cars"]
    assert 0 < cars["frames_processed"] <= cars["frames_total"]
    assert 0 < cars["accuracy"] <= 1  # per-frame F1 of the detections, carried over drops

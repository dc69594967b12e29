"""End to end: real base models, real joint retraining, bundles, report, resume, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from gemel.analyze import analyze
from gemel.cli import main
from gemel.data import load_split
from gemel.data.train import evaluate
from gemel.merge.bundle import load_bundle, read_manifest
from gemel.merge.run import merge_workload, param_bytes
from gemel.workload import load_workload
from merge_helpers import write_shapes_video

pytestmark = pytest.mark.slow


def _query(name, source, cls, **model):
    return {
        "name": name,
        "source": source,
        "task": {"kind": "presence", "classes": [cls]},
        "model": {"factory": "merge_helpers:tiny_net", "num_classes": 2, "kwargs": model},
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    root = tmp_path_factory.mktemp("merge")
    for i in (0, 1):
        write_shapes_video(root / f"v{i}.mkv", 600, seed=i)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(root / "cache"))
        yield root
    torch.set_num_threads(threads)


def _write(root, name, queries):
    path = root / f"{name}.yaml"
    sources = {
        f"v{i}": {"kind": "video", "path": f"v{i}.mkv", "labels": f"v{i}.labels.jsonl"}
        for i in (0, 1)
    }
    data = {
        "name": name,
        "defaults": {"train": {"epochs": 6, "batch_size": 32, "lr": 0.005}},
        "sources": sources,
        "queries": queries,
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def workload_path(env):
    queries = [
        _query("car0", "v0", "car"),
        _query("person0", "v0", "person"),
        _query("car1", "v1", "car"),
    ]
    return _write(env, "three", queries)


@pytest.fixture(scope="module")
def merged(env, workload_path):
    out = env / "gemel"
    return out, merge_workload(load_workload(workload_path), out, seed=3)


def test_every_published_configuration_meets_every_target_on_test(workload_path, merged):
    out, report = merged
    wl = load_workload(workload_path)
    assert report["memory_before_bytes"] == analyze(wl).total_param_bytes
    final = load_bundle(out)
    assert report["memory_after_bytes"] == param_bytes(final)
    assert report["memory_after_bytes"] < report["memory_before_bytes"]
    assert json.loads((out / "report.json").read_text())["queries"] == report["queries"]
    for q, r in report["queries"].items():
        assert r["target"] == pytest.approx(0.95 * r["unmerged_accuracy"])
        assert 0 < r["chance_accuracy"] <= 1
        assert r["merged_accuracy"] >= r["target"], q
    accepted = [s for s in report["steps"] if s["status"] != "rejected"]
    assert accepted and all((out / s["bundle"] / "manifest.json").is_file() for s in accepted)
    for step in accepted:  # every configuration ever published, scored on test
        models = load_bundle(out / step["bundle"])
        for q, r in report["queries"].items():
            assert evaluate(models[q], load_split(wl, q, "test")) >= r["target"], (step, q)


def test_retraining_recovers_what_tying_alone_loses(merged):
    _, report = merged
    recovered = [
        (s["label"], q)
        for s in report["steps"]
        if s["status"] != "rejected"
        for q, a in s["accuracy"].items()
        if a["accuracy_tied"] < a["target"] <= a["accuracy"]
    ]
    assert recovered, [s["accuracy"] for s in report["steps"]]
    assert any(s["samples"] > 0 and s["epochs"] > 0 for s in report["steps"])
    for s in report["steps"]:  # the learning curve: validations from tying to the end
        assert s["history"][0]["epoch"] == 0
        assert s["history"][-1]["epoch"] == pytest.approx(s["epochs"])
        assert {q: a["accuracy_tied"] for q, a in s["accuracy"].items()} == s["history"][0][
            "accuracy"
        ]


def test_resume_after_a_crash_mid_step_ends_in_the_same_configuration(env, workload_path, merged):
    out, report = merged
    assert len(report["steps"]) >= 2
    wl = load_workload(workload_path)
    crashed = env / "crashed"

    def crash(index: int) -> None:
        if index == 1:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        merge_workload(wl, crashed, seed=3, on_step=crash)
    assert not (crashed / "report.json").exists()
    assert main(["merge", str(workload_path), "--out", str(crashed)]) == 2  # no silent reuse
    resumed = merge_workload(wl, crashed, seed=3, resume=True)
    assert resumed["merge"] == report["merge"]
    strip = [(s["label"], s["status"], s["failed"]) for s in report["steps"]]
    assert [(s["label"], s["status"], s["failed"]) for s in resumed["steps"]] == strip
    digests = {t: e.sha256 for t, e in read_manifest(out).tensors.items()}
    assert {t: e.sha256 for t, e in read_manifest(crashed).tensors.items()} == digests


def test_conflicting_tasks_are_rejected_and_the_models_stay_unmerged(env):
    # without normalisation layers, fully shared models compute one function: one camera
    # cannot answer "car?" and "person?" with the same answers
    queries = [_query("car", "v0", "car", norm=False), _query("person", "v0", "person", norm=False)]
    path = _write(env, "conflict", queries)
    report = merge_workload(load_workload(path), env / "conflict", strategy="all")
    (step,) = report["steps"]
    assert step["status"] == "rejected" and step["failed"]
    assert report["memory_after_bytes"] == report["memory_before_bytes"]
    for r in report["queries"].values():
        assert r["merged_accuracy"] == pytest.approx(r["unmerged_accuracy"])


def test_cli_merge_none_and_evaluate(env, workload_path, tmp_path, capsys):
    out = tmp_path / "none"
    assert main(["merge", str(workload_path), "--out", str(out), "--strategy", "none"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == [] and report["saved_bytes"] == 0
    scores = tmp_path / "scores.json"
    args = ["evaluate", str(workload_path), "--bundle", str(out), "--json", str(scores)]
    assert main(args) == 0
    result = json.loads(scores.read_text())["queries"]
    for q, r in report["queries"].items():
        assert result[q]["accuracy"] == pytest.approx(r["unmerged_accuracy"])
        assert result[q]["frames"] == r["frames"] == 120
    assert main(["evaluate", str(workload_path), "--bundle", str(tmp_path / "nope")]) == 2
    assert "bundle folder not found" in capsys.readouterr().err
    assert main(["evaluate", str(workload_path), "--bundle", str(out), "--json", str(out)]) == 2
    assert "is a folder; --json needs a file path" in capsys.readouterr().err
    resized = [_query("car0", "v0", "car"), _query("person0", "v0", "person")]
    resized[0]["model"]["input_size"] = 16
    other = _write(env, "resized", resized)
    assert main(["evaluate", str(other), "--bundle", str(out)]) == 2
    assert "query 'car0' was bundled with other input settings" in capsys.readouterr().err
    assert main(["merge", str(workload_path), "--out", str(out), "--resume", "--seed", "1"]) == 2
    assert "cannot resume: seed was 0, now 1" in capsys.readouterr().err
    assert (
        main(["merge", str(workload_path), "--out", str(tmp_path / "x"), "--device", "tpu9"]) == 2
    )
    assert "bad device 'tpu9'" in capsys.readouterr().err
    assert (
        main(["merge", str(workload_path), "--out", str(tmp_path / "x"), "--max-steps", "-1"]) == 2
    )
    assert "max steps must be 0 or more" in capsys.readouterr().err
    assert main(["merge", str(workload_path), "--out", str(tmp_path / "x"), "--margin=-5"]) == 2
    assert "--margin must be in [0, 100) accuracy points, not -5" in capsys.readouterr().err

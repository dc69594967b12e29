"""The demo end to end on a tiny workload: outputs, figures against their sources, the HTML."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser

import pytest
import torch
import yaml

from gemel.cli import main
from gemel.demo import DemoSettings, quick_workload, run_demo
from gemel.merge import load_bundle
from gemel.merge.trainer import unique_parameters
from gemel.report.tables import goals_table
from gemel.workload import load_workload, workload_from_dict

pytestmark = pytest.mark.slow

TINY = DemoSettings(
    merge_budget_s=20.0,
    epochs_per_step=1.0,
    all_epochs=1.0,
    profile_repeats=1,
    simulate_s=6.0,
    fps_sweep=(5.0, 40.0),
    run_s=3.0,
    threads=1,
)


def _workload(frames: int = 300) -> dict:
    def query(name, task):
        return {
            "name": name,
            "source": "cam0",
            "task": task,
            "model": {
                "factory": "edge_tiny:tiny",
                "input_size": 16,
                "kwargs": {"num_classes": 2 if task["kind"] == "presence" else 3, "width": 256},
            },
        }

    return {
        "name": "tiny-demo",
        "stage_budget_s": {"data": 20, "train": 60, "merge": 60},
        "defaults": {
            "fps": 5, "sla_ms": 400, "target": 0.5,
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
        },
        "sources": {
            "cam0": {
                "kind": "synthetic", "camera": 0, "seed": 0, "frames": frames,
                "resolution": [32, 32], "fps": 5,
            }
        },
        "queries": [
            query("cars", {"kind": "presence", "classes": ["car"]}),
            query("people", {"kind": "count", "classes": ["person"], "buckets": [0, 1, 2]}),
            query("vehicles", {"kind": "presence", "classes": ["car", "bus", "truck"]}),
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEMEL_CACHE", str(root / "cache"))
        out = root / "out"
        report = run_demo(out, workload=workload_from_dict(_workload()), settings=TINY)
        yield out, report


def _json(path):
    return json.loads(path.read_text())


def test_demo_writes_every_output(demo):
    out, _ = demo
    names = ("merge/report.json", "merge/manifest.json", "merge-all/report.json",
             "simulate.json", "run.json", "report.html", "profile.json", "demo.json")  # fmt: skip
    for name in names:
        assert (out / name).is_file(), name
    runs = _json(out / "simulate.json")["runs"]
    seen = {(r["strategy"], r["memory_level"]) for r in runs}
    assert seen >= {(s, lv) for s in ("none", "gemel", "all") for lv in ("min", "50", "75")}
    for r in runs + _json(out / "run.json")["runs"]:
        for key in ("strategy", "memory_level", "budget_bytes", "sharing", "eviction", "order",
                    "swaps", "swap_bytes", "queries"):  # fmt: skip
            assert key in r
    meta = _json(out / "demo.json")
    stages = [s["stage"] for s in meta["stages"]]
    assert stages == ["data", "train", "analyze", "merge", "profile", "simulate", "run", "report"]
    assert meta["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert all(r["device"] == meta["device"] for r in _json(out / "run.json")["runs"])


def test_report_agrees_with_bundle_merge_report_and_simulator(demo):
    out, report = demo
    merged = _json(out / "merge/report.json")
    gemel = report["strategies"]["gemel"]
    assert merged["memory_after_bytes"] < merged["memory_before_bytes"]  # something is shared
    assert gemel["memory_before_bytes"] == merged["memory_before_bytes"]
    assert gemel["memory_after_bytes"] == merged["memory_after_bytes"]
    models = load_bundle(out / "merge")
    distinct = sum(p.numel() * p.element_size() for p in unique_parameters(list(models.values())))
    assert gemel["memory_after_bytes"] == distinct
    assert report["goals"]["memory_saved_fraction"] == pytest.approx(
        1 - distinct / merged["memory_before_bytes"]
    )
    for q, r in merged["queries"].items():
        row = report["queries"][q]
        assert row["gemel_accuracy"] == r["merged_accuracy"]
        assert row["target"] == r["target"]
        assert row["chance_accuracy"] == r["chance_accuracy"]
    above = sum(r["unmerged_accuracy"] > r["chance_accuracy"] for r in merged["queries"].values())
    assert report["goals"]["base_above_chance"] == above
    all_report = _json(out / "merge-all/report.json")
    for q, r in all_report["queries"].items():
        assert report["queries"][q]["all_accuracy"] == r["merged_accuracy"]
    step = all_report["steps"][0]
    for q, row in report["queries"].items():
        tried = step["accuracy"].get(q)
        if tried is None:
            assert row["all_step"] is None
        else:
            assert row["all_step"]["val_accuracy"] == tried["accuracy"]
            assert row["all_step"]["val_target"] == tried["target"]

    runs = _json(out / "simulate.json")["runs"]
    assert len(report["simulate"]) == len(runs)
    for mine, theirs in zip(report["simulate"], runs, strict=True):
        assert mine["accuracy"] == theirs["accuracy"]
        assert mine["swaps"] == theirs["swaps"]
        for q, v in theirs["queries"].items():
            assert mine["queries"][q]["frames_processed"] == v["frames_processed"]
    at_min = [r for r in runs if r["memory_level"] == "min"]
    best_none = max(r["accuracy"] for r in at_min if r["strategy"] == "none")
    gemel_min = max(
        r["accuracy"] for r in at_min if r["strategy"] == "gemel" and r["sharing"] == "time"
    )
    assert report["goals"]["min_gain_points"] == pytest.approx(100 * (gemel_min - best_none))
    profile = _json(out / "profile.json")
    costs = {c["query"]: c for c in report["turn_costs"]}
    assert set(costs) == set(profile["queries"])
    for q, p in profile["queries"].items():
        assert costs[q]["copy_s"] == pytest.approx(p["weight_bytes"] / profile["load_bytes_per_s"])
        assert costs[q]["run_s"] == p["batches"]["1"]["run_s"]
    real = _json(out / "run.json")["runs"][0]
    assert report["runtime"][0]["accuracy"] == real["accuracy"]
    assert real["strategy"] == "gemel" and real["mode"] == "runtime"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def test_goals_of_a_quick_run_are_not_judged(demo):
    _, report = demo
    full = goals_table(report)
    quick = goals_table({**report, "quick": True})
    assert len(full.rows) == len(quick.rows) == 4
    assert {row[-1] for row in full.rows} <= {"met", "NOT met"}
    assert {row[-1] for row in quick.rows} == {"(smoke run)"}
    assert "smoke run" in quick.title and "smoke run" not in full.title


def test_html_parses_and_embeds_its_plots(demo):
    out, report = demo
    page = _Page()
    html = (out / "report.html").read_text()
    page.feed(html)
    page.close()
    assert len(page.images) == 4
    for src in page.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.links == []
    assert "http://" not in html and "https://" not in html
    text = " ".join(page.text)
    for q in report["queries"]:
        assert q in text


def test_gemel_report_regenerates_the_page(demo, capsys):
    out, _ = demo
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "goals" in printed and "wall time per stage" in printed


def test_report_of_a_folder_without_a_demo_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "demo.json" in err and err.count("\n") == 1


@pytest.mark.parametrize("damaged", ["run.json", "demo.json", "merge/report.json"])
def test_report_of_a_damaged_demo_folder_is_a_user_error(demo, damaged, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(demo[0], out)
    (out / damaged).write_text("{}")
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / damaged}: not what gemel demo writes" in err and err.count("\n") == 1


def test_quick_workload_shrinks_data_and_training(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(_workload(frames=2000)))
    wl = load_workload(path)
    quick = quick_workload(wl, frames=300, epochs=1)
    assert quick.sources["cam0"].frames == 300
    assert quick.defaults.train.epochs == 1
    assert quick.stage_budget_s == {k: v / 4 for k, v in wl.stage_budget_s.items()}
    assert quick.name != wl.name
    assert wl.sources["cam0"].frames == 2000


def test_demo_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["demo", "--out", str(target), "--quick"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_demo_runs_again_into_a_folder_it_wrote(demo, tmp_path):
    out, _ = demo
    again = tmp_path / "again"
    shutil.copytree(out, again)
    report = run_demo(again, workload=workload_from_dict(_workload()), settings=TINY)
    assert report["dir"] == str(again)
    assert _json(again / "merge/report.json")["memory_before_bytes"] > 0


def test_demo_keeps_a_folder_that_is_not_its_own(tmp_path, capsys):
    (tmp_path / "merge").mkdir()
    (tmp_path / "merge" / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 2
    assert "not a merge output" in capsys.readouterr().err
    assert (tmp_path / "merge" / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_demo_on_cuda_without_cuda_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--quick", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "\n" not in err
    assert not (tmp_path / "d").exists()


def test_demo_refuses_an_unknown_device(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--quick", "--device", "tpu"]) == 2
    assert "bad device 'tpu': use auto, cpu or cuda" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_demo_of_a_workload_without_tasks_fails_before_any_output(tmp_path, capsys):
    data = _workload()
    for q in data["queries"]:
        del q["task"]
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["demo", "--out", str(tmp_path / "d"), "--workload", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "field 'task' is required" in err and "\n" not in err
    assert not (tmp_path / "d").exists()

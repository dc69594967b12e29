"""``gemel profile``, ``gemel run`` and ``gemel simulate`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from edge_tiny import stream_workload, tiny_bundle
from gemel.workload import load_workload

NAMES = ["a", "b"]
CONTRACT = ("strategy", "memory_level", "budget_bytes", "sharing", "eviction", "order", "swaps",
            "swap_bytes", "queries")  # fmt: skip


pytestmark = pytest.mark.usefixtures("module_cache")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    path = root / "w.yaml"
    path.write_text(yaml.safe_dump(stream_workload(NAMES, fps=10, sla_ms=300, frames=100)))
    wl = load_workload(path)
    return {
        "workload": path,
        "none": tiny_bundle(root / "none", NAMES, merged=False, workload=wl),
        "gemel": tiny_bundle(root / "gemel", NAMES, merged=True, workload=wl),
    }


def test_profile_writes_blocks_queries_and_batches(files, tmp_path: Path, gemel_cli) -> None:
    out = tmp_path / "p.json"
    r = gemel_cli("profile", files["gemel"], "--json", out, "--repeats", "1")
    assert r.status == 0, r.err
    p = json.loads(out.read_text())
    assert p["device"] == "cpu" and p["overhead_bytes"] == 0
    assert set(p["queries"]) == set(NAMES)
    for q in p["queries"].values():
        assert set(q["batches"]) == {"1", "2", "4", "8"}
        assert all(c["run_s"] > 0 and c["activation_bytes"] > 0 for c in q["batches"].values())
    assert all(b["load_s"] > 0 and b["nbytes"] > 0 for b in p["blocks"].values())


def test_run_writes_the_contract(files, tmp_path: Path, gemel_cli) -> None:
    out = tmp_path / "run.json"
    r = gemel_cli(
        "run", files["workload"], "--bundle", files["gemel"], "--memory-budget", "min",
        "--duration", "1s", "--json", out,
    )  # fmt: skip
    assert r.status == 0, r.err
    (run,) = json.loads(out.read_text())["runs"]
    assert all(k in run for k in CONTRACT)
    assert (run["strategy"], run["memory_level"], run["sharing"]) == ("gemel", "min", "time")
    assert run["eviction"] == "schedule"
    for v in run["queries"].values():
        assert v["frames_total"] == 10 and 0 <= v["frames_processed"] <= 10
        assert 0.0 <= v["accuracy"] <= 1.0


def test_simulate_compares_bundles_and_plots(files, tmp_path: Path, gemel_cli) -> None:
    prof = tmp_path / "p.json"
    assert gemel_cli("profile", files["none"], "--json", prof, "--repeats", "1").status == 0
    out, png = tmp_path / "sim.json", tmp_path / "sim.png"
    r = gemel_cli(
        "simulate", files["workload"], "--bundle", files["none"], "--bundle", files["gemel"],
        "--profile", prof, "--memory-budget", "min,75", "--fps", "10,40", "--duration", "3s",
        "--json", out, "--plot", png,
    )  # fmt: skip
    assert r.status == 0, r.err
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 2 * 2 * 2
    assert {r["strategy"] for r in runs} == {"none", "gemel"}
    assert all(all(k in r for k in CONTRACT) for r in runs)
    assert png.stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "{w}", "--bundle", "{b}", "--memory-budget", "1KiB", "--duration", "1s"],
         "needs"),
        (["run", "{w}", "--bundle", "{b}", "--device", "cuda"], "cuda"),
        (["run", "{w}", "--bundle", "{w}"], "not a bundle: a file, not a folder"),
        (["simulate", "{w}", "--bundle", "{b}", "--profile", "missing.json"], "profile not found"),
        (["simulate", "{w}", "--bundle", "{b}", "--fps", "fast"], "--fps"),
        (["profile", "{b}", "--device", "tpu", "--json", "x.json"], "bad device"),
        (["profile", "{b}", "--json", "x.json", "--repeats", "0"], "--repeats: must be at least 1"),
        (["profile", "{b}", "--json", "."], "is a folder; --json needs a file path"),
        (["run", "{w}", "--bundle", "{b}", "--duration", "0s"], "--duration must be positive"),
        (["run", "{w}", "--bundle", "{b}", "--json", "."], "is a folder; --json"),
        (["simulate", "{w}", "--bundle", "{b}", "--memory-budget", ","], "--memory-budget"),
        (["simulate", "{w}", "--bundle", "{b}", "--sharing", "time,spce"], "'spce' is not time"),
        (["simulate", "{w}", "--bundle", "{b}", "--plot", "x.txt"], "cannot plot to a .txt file"),
        (["simulate", "{w}", "--bundle", "{b}", "--plot", "."], "is a folder; --plot"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_status_2(
    files, gemel_cli, tmp_path: Path, args: list[str], message: str, monkeypatch
) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)
    filled = [a.format(w=files["workload"], b=files["gemel"]) for a in args]
    r = gemel_cli(*filled)
    assert r.status == 2
    assert message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not list(tmp_path.glob("*.json"))

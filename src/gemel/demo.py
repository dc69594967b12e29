"""``gemel demo``: the whole flow on one workload, end to end, with a report.

Steps (each timed against the workload's ``stage_budget_s``): generate the sources' data, train
the base models (cached under ``$GEMEL_CACHE``), analyze, merge with ``gemel`` under a time
budget and with ``all`` (one step) and ``none`` beside it, profile the unmerged bundle, simulate
none / gemel / all at the min, 50 and 75 memory levels (time and space sharing for ``none``, so
merging is compared with the strongest no-merging configuration) and over a range of stream
rates, run the real runtime for ``gemel`` at ``min``, and write the report. Training, merging,
profiling and the real runtime use one device: CUDA where it is available, else the CPU.

Outputs in ``out_dir``: ``merge/`` (the ``gemel`` bundle and its report.json, as
``gemel merge``), ``merge-all/``, ``merge-none/``, ``analyze.json``, ``profile.json``,
``simulate.json``, ``simulate-fps.json``, ``run.json``, ``demo.json`` (settings and stage
times) and ``report.html``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from gemel.analyze import analyze
from gemel.data import base_models, load_clip, load_split
from gemel.data.dataset import query_task
from gemel.edge import profile_bundle, record_predictions, run_bundle, workload_feeds
from gemel.edge.simulate import simulate_bundle
from gemel.errors import GemelError
from gemel.io import write_json_atomic
from gemel.merge import read_manifest
from gemel.merge.run import merge_workload
from gemel.models import check_device
from gemel.report import build_report, print_summary, write_html
from gemel.report.figures import STRATEGY_DIRS
from gemel.workload import Workload, load_workload

LEVELS = ("min", "50", "75")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo spends on each step (the workload itself sets data and base training)."""

    merge_budget_s: float = 240.0
    epochs_per_step: float = 2.0
    all_epochs: float = 0.5
    profile_repeats: int = 3
    simulate_s: float = 100.0
    fps_sweep: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0)
    run_level: str = "min"
    run_s: float = 30.0
    threads: int | None = None
    device: str = "auto"


FULL = DemoSettings()
QUICK = DemoSettings(
    merge_budget_s=25.0,
    epochs_per_step=0.5,
    all_epochs=0.5,
    profile_repeats=1,
    simulate_s=20.0,
    fps_sweep=(5.0, 20.0, 80.0),
    run_s=8.0,
)


def quick_workload(wl: Workload, *, frames: int = 400, epochs: int = 1) -> Workload:
    """A smaller copy of ``wl`` for a smoke run: shorter synthetic clips, fewer epochs."""
    sources = {
        name: src.model_copy(update={"frames": min(src.frames, frames)})
        if src.kind == "synthetic"
        else src
        for name, src in wl.sources.items()
    }
    train = wl.defaults.train.model_copy(update={"epochs": min(wl.defaults.train.epochs, epochs)})
    queries = [
        q.model_copy(update={"train": q.train.model_copy(update={"epochs": epochs})})
        if q.train is not None
        else q
        for q in wl.queries
    ]
    budgets = {k: v / 4 for k, v in (wl.stage_budget_s or {}).items()} or None
    return wl.model_copy(
        update={
            "name": f"{wl.name}-quick",
            "sources": sources,
            "queries": queries,
            "defaults": wl.defaults.model_copy(update={"train": train}),
            "stage_budget_s": budgets,
        }
    )


class StageClock:
    """Times each stage and prints it against its budget."""

    def __init__(self, budgets: dict[str, float] | None, console: Console) -> None:
        self.budgets = budgets or {}
        self.console = console
        self.stages: list[dict[str, Any]] = []

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[Callable[[str], None]]:
        budget = self.budgets.get(name)
        t0 = time.monotonic()
        with self.console.status(f"[bold]{name}[/]: {what}") as status:
            yield lambda msg: status.update(f"[bold]{name}[/]: {msg}")
        wall = time.monotonic() - t0
        self.stages.append({"stage": name, "wall_s": round(wall, 2), "budget_s": budget})
        over = budget is not None and wall > budget
        against = f" / {budget:.0f} s budget" if budget is not None else ""
        colour = "red" if over else "green"
        self.console.print(f"[{colour}]{name:>9}[/] {wall:7.1f} s{against}  {what}")


def run_demo(
    out_dir: str | Path,
    *,
    quick: bool = False,
    workload: Workload | str | Path | None = None,
    settings: DemoSettings | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir``; returns the report's figures (see :mod:`gemel.report`).

    ``workload`` defaults to the shipped demo workload; ``quick`` runs a smaller variant of
    it (:func:`quick_workload`) with :data:`QUICK` settings, as a smoke test. The settings'
    ``device`` is ``"auto"`` (CUDA if available, else the CPU), ``"cpu"`` or a CUDA device.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GemelError(f"{out}: exists and is not a folder")
    if workload is None:
        workload = Path(str(files("gemel") / "examples" / "demo.yaml"))
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    if quick:
        wl = quick_workload(wl)
    cfg = settings or (QUICK if quick else FULL)
    if cfg.run_level not in LEVELS:
        raise GemelError(f"run level must be one of {', '.join(LEVELS)}, not {cfg.run_level!r}")
    for q in wl.queries:  # every query needs a source and a task: fail before any output
        wl.source_of(q)
        query_task(wl, q.name)
    device = demo_device(cfg.device)
    console = console or Console(stderr=True)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    for folder in STRATEGY_DIRS.values():
        _clear_merge_output(out / folder)
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(wl.stage_budget_s, console)
    t0 = time.monotonic()
    console.print(
        f"[bold]gemel demo[/]: workload {wl.name!r}, {len(wl.queries)} queries on {device} -> {out}"
    )

    with clock.stage("data", "generate and cache the sources") as show:
        for name, src in wl.sources.items():
            show(f"source {name}")
            load_clip(src, where=f"{wl.label}: source {name!r}")
        for q in wl.query_names:
            for split in ("train", "val", "test"):
                load_split(wl, q, split)

    with clock.stage("train", "base models (cached)") as show:
        records = base_models(
            wl,
            device=device,
            progress=lambda q, done, total: show(f"training {q}: batch {done}/{total}"),
        )

    with clock.stage("analyze", "shareable layers and the max-merge bound"):
        analysis = analyze(wl)
        write_json_atomic(out / "analyze.json", analysis.to_json())

    with clock.stage("merge", "gemel under a time budget, then all and none") as show:
        show(f"gemel strategy, {cfg.merge_budget_s:.0f} s budget")
        merge_workload(
            wl,
            out / STRATEGY_DIRS["gemel"],
            strategy="gemel",
            time_budget_s=cfg.merge_budget_s,
            epochs_per_step=cfg.epochs_per_step,
            device=device,
        )
        show("all strategy (one step)")
        merge_workload(
            wl,
            out / STRATEGY_DIRS["all"],
            strategy="all",
            epochs_per_step=cfg.all_epochs,
            device=device,
        )
        show("none (the unmerged bundle)")
        merge_workload(wl, out / STRATEGY_DIRS["none"], strategy="none", device=device)

    bundles = {s: out / d for s, d in STRATEGY_DIRS.items()}
    with clock.stage("profile", f"block loads and model runs on {device}") as show:
        feeds = workload_feeds(wl, wl.query_names)
        sizes = {q: f.images[0].shape[:2] for q, f in feeds.items() if len(f.images)}
        profile = profile_bundle(
            bundles["none"], device, repeats=cfg.profile_repeats, frame_size=sizes, progress=show
        )
        write_json_atomic(out / "profile.json", profile.model_dump(mode="json"))

    with clock.stage("simulate", "none / gemel / all at the memory levels and rates") as show:
        runs, sweep = _simulate_strategies(bundles, profile, feeds, cfg, show)
        write_json_atomic(out / "simulate.json", {"runs": runs})
        write_json_atomic(out / "simulate-fps.json", {"runs": sweep})

    with clock.stage("run", f"the real runtime on {device}: gemel @ {cfg.run_level}"):
        run_feeds = workload_feeds(wl, wl.query_names, cfg.run_s)
        record = run_bundle(
            bundles["gemel"],
            run_feeds,
            device=device,
            memory_budget=cfg.run_level,
            duration_s=cfg.run_s,
            profile=profile,
        )
        write_json_atomic(out / "run.json", {"runs": [record]})

    meta = {
        "workload": wl.name,
        "quick": quick,
        "device": device,
        "settings": asdict(cfg),
        "base_models": {q: r.to_json() for q, r in records.items()},
        "stages": clock.stages,
    }
    with clock.stage("report", "terminal summary and report.html"):
        write_json_atomic(out / "demo.json", meta)
        report = build_report(out)
        write_html(report, out / "report.html")
    meta["stages"] = clock.stages
    meta["wall_s"] = round(time.monotonic() - t0, 2)
    write_json_atomic(out / "demo.json", meta)
    report = build_report(out)
    print_summary(report, Console())
    return report


def demo_device(device: str) -> str:
    """The device the demo runs on: ``"auto"`` is ``"cuda"`` where CUDA is available."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(check_device(device, choices="auto, cpu or cuda[:N]"))


def _clear_merge_output(folder: Path) -> None:
    """Remove a previous demo's merge output, so that the demo starts its merges afresh."""
    if not folder.exists():
        return
    if not folder.is_dir() or not (folder / "journal.jsonl").is_file():
        raise GemelError(f"{folder}: exists and is not a merge output; choose another --out")
    shutil.rmtree(folder)


def _simulate_strategies(
    bundles: dict[str, Path],
    profile: Any,
    feeds: Any,
    cfg: DemoSettings,
    show: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every strategy at every level, and at ``min`` over the rate sweep (``none`` under both
    time and space sharing); returns (level runs, sweep runs)."""
    runs, sweep = [], []
    for strategy, bundle in bundles.items():
        show(f"{strategy}: recording predictions")
        manifest = read_manifest(bundle)
        preds = record_predictions(bundle, feeds)
        modes = ("time", "space") if strategy == "none" else ("time",)
        for mode in modes:
            for level in LEVELS:
                show(f"{strategy} {mode} @ {level}")
                run = _simulate(manifest, profile, feeds, preds, level, cfg, mode)
                if run is not None:
                    runs.append({**run, "bundle": str(bundle)})
            for fps in cfg.fps_sweep:
                show(f"{strategy} {mode} @ min, {fps:g} fps")
                run = _simulate(manifest, profile, feeds, preds, "min", cfg, mode, fps)
                if run is not None:
                    sweep.append({**run, "bundle": str(bundle)})
    return runs, sweep


def _simulate(
    manifest: Any,
    profile: Any,
    feeds: Any,
    preds: Any,
    level: str,
    cfg: DemoSettings,
    sharing: str,
    fps: float | None = None,
) -> dict[str, Any] | None:
    """One simulated run; ``None`` where space sharing cannot fit the queries in the budget."""
    try:
        return simulate_bundle(
            manifest,
            profile,
            feeds,
            preds,
            memory_budget=level,
            duration_s=cfg.simulate_s,
            sharing=sharing,
            fps=fps,
        )
    except GemelError:
        if sharing == "space":
            return None
        raise

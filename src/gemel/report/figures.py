"""The demo's figures, gathered from its output folder into one JSON-ready dict.

Everything is read from what the other stages wrote (``merge*/report.json`` and bundles,
``simulate.json``, ``simulate-fps.json``, ``run.json``, ``demo.json``), so ``gemel report DIR``
regenerates the report without recomputing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gemel.errors import GemelError
from gemel.merge.memory import bundle_memory

STRATEGY_DIRS = {"none": "merge-none", "gemel": "merge", "all": "merge-all"}
MEMORY_GOAL = 0.40
GAIN_GOAL_POINTS = 8.0
REPORT_KEYS = ("memory_before_bytes", "memory_after_bytes", "queries_at_target", "steps_accepted",
               "steps_tried", "wall_s", "queries")  # fmt: skip


def _read(path: Path, *keys: str) -> Any:
    """The JSON object in ``path``; an error when it lacks one of ``keys``."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GemelError(f"{path}: missing (run `gemel demo --out {path.parent}` first)") from None
    except json.JSONDecodeError as e:
        raise GemelError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise GemelError(f"{path}: not what gemel demo writes (no {missing[0]!r})")
    return data


def _strategy(out: Path, name: str) -> dict[str, Any] | None:
    folder = out / STRATEGY_DIRS[name]
    if not (folder / "report.json").is_file():
        return None
    report = _read(folder / "report.json", *REPORT_KEYS)
    memory = bundle_memory(folder)
    return {
        "memory_before_bytes": report["memory_before_bytes"],
        "memory_after_bytes": report["memory_after_bytes"],
        "saved_fraction": 1 - report["memory_after_bytes"] / report["memory_before_bytes"],
        "queries_at_target": report["queries_at_target"],
        "steps_accepted": report["steps_accepted"],
        "steps_tried": report["steps_tried"],
        "wall_s": report["wall_s"],
        "bundle_distinct_param_bytes": memory.distinct_param_bytes,
        "per_query_bytes": {
            q.name: {"params": q.param_bytes, "shared": q.shared_param_bytes}
            for q in memory.queries
        },
        "queries": report["queries"],
        "savings_over_time": _savings_over_time(report),
        "first_step": _first_step(report),
    }


def _first_step(report: dict[str, Any]) -> dict[str, Any] | None:
    """The first step tried: its status and, per query it retrained, the validation accuracy
    of its best state against the validation target (for ``all``: sharing everything)."""
    steps = report.get("steps") or []
    if not steps:
        return None
    step = steps[0]
    return {
        "status": step["status"],
        "epochs": step.get("epochs"),
        "accuracy": {
            q: {"val_accuracy": a["accuracy"], "val_target": a["target"], "met": a["met"]}
            for q, a in step.get("accuracy", {}).items()
        },
    }


def _savings_over_time(report: dict[str, Any]) -> list[list[float]]:
    """``[seconds of search, bytes saved]`` after each step (starting at 0, 0)."""
    points, t = [[0.0, 0.0]], 0.0
    for step in report.get("steps", []):
        t += step["wall_s"]
        points.append([t, float(step["total_saved_bytes"])])
    return points


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "strategy": run["strategy"],
        "sharing": run["sharing"],
        "memory_level": run["memory_level"],
        "budget_bytes": run["budget_bytes"],
        "fps": run.get("fps"),
        "swaps": run["swaps"],
        "swap_bytes": run["swap_bytes"],
        "frames_processed_fraction": run["frames_processed_fraction"],
        "accuracy": run["accuracy"],
        "queries": {
            q: {k: v[k] for k in ("frames_total", "frames_processed", "accuracy")}
            for q, v in run["queries"].items()
        },
    }


def _best(rows: list[dict[str, Any]], strategy: str, **match: Any) -> dict[str, Any] | None:
    """The most accurate run of ``strategy`` (any sharing mode) matching ``match``."""
    cands = [
        r for r in rows if r["strategy"] == strategy and all(r[k] == v for k, v in match.items())
    ]
    return max(cands, key=lambda r: r["accuracy"], default=None)


def _gain_points(rows: list[dict[str, Any]], **match: Any) -> float | None:
    gemel = _best([r for r in rows if r["sharing"] == "time"], "gemel", **match)
    none = _best(rows, "none", **match)
    if gemel is None or none is None:
        return None
    return 100 * (gemel["accuracy"] - none["accuracy"])


def _turn_costs(out: Path) -> list[dict[str, Any]]:
    """Per query, from the demo's profile: the seconds to copy its weights (at the profile's
    load bandwidth) and to run a batch of one. Their ratio says how much time sharing loses to
    swaps, and so how much merging can give back."""
    path = out / "profile.json"
    if not path.is_file():
        return []
    profile = _read(path, "load_bytes_per_s", "queries")
    return [
        {
            "query": q,
            "weight_bytes": p["weight_bytes"],
            "copy_s": p["weight_bytes"] / profile["load_bytes_per_s"],
            "run_s": p["batches"]["1"]["run_s"],
        }
        for q, p in profile["queries"].items()
        if "1" in p["batches"]
    ]


def _step_of(strategy: dict[str, Any] | None, query: str) -> dict[str, Any] | None:
    step = strategy and strategy["first_step"]
    return step["accuracy"].get(query) if step else None


def build_report(out_dir: str | Path) -> dict[str, Any]:
    """The report's figures from a demo folder (see the module docstring)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise GemelError(f"{out}: not a folder")
    meta = _read(out / "demo.json", "workload", "quick", "stages")
    strategies = {s: r for s in STRATEGY_DIRS if (r := _strategy(out, s)) is not None}
    if "gemel" not in strategies:
        raise GemelError(f"{out / 'merge' / 'report.json'}: missing (no gemel merge in {out})")
    gemel = strategies["gemel"]
    queries = {}
    for q, r in gemel["queries"].items():
        queries[q] = {
            "unmerged_accuracy": r["unmerged_accuracy"],
            "target": r["target"],
            "chance_accuracy": r["chance_accuracy"],
            **{
                f"{s}_accuracy": strategies[s]["queries"][q]["merged_accuracy"]
                for s in ("gemel", "all")
                if s in strategies
            },
            **{
                f"{s}_met": strategies[s]["queries"][q]["met"]
                for s in ("gemel", "all")
                if s in strategies
            },
            "all_step": _step_of(strategies.get("all"), q),
        }
    sim = [_run_row(r) for r in _read(out / "simulate.json", "runs")["runs"]]
    sweep_path = out / "simulate-fps.json"
    sweep = [_run_row(r) for r in _read(sweep_path, "runs")["runs"]] if sweep_path.is_file() else []
    runtime = [_run_row(r) for r in _read(out / "run.json", "runs")["runs"]]
    rates = sorted({r["fps"] for r in sweep if r["fps"] is not None})
    min_gain = _gain_points(sim, memory_level="min")
    return {
        "dir": str(out),
        "workload": meta["workload"],
        "quick": meta["quick"],
        "device": meta.get("device", "cpu"),
        "stages": meta["stages"],
        "wall_s": meta.get("wall_s"),
        "strategies": {
            s: {k: v for k, v in r.items() if k != "queries"} for s, r in strategies.items()
        },
        "queries": queries,
        "simulate": sim,
        "fps_sweep": sweep,
        "gain_by_fps": [[f, _gain_points(sweep, fps=f)] for f in rates],
        "runtime": runtime,
        "turn_costs": _turn_costs(out),
        "runtime_simulated": [
            _best(sim, r["strategy"], memory_level=r["memory_level"], sharing=r["sharing"])
            for r in runtime
        ],
        "goals": {
            "memory_saved_fraction": gemel["saved_fraction"],
            "memory_goal": MEMORY_GOAL,
            "memory_met": gemel["saved_fraction"] >= MEMORY_GOAL,
            "all_at_target": gemel["queries_at_target"] == len(queries),
            "base_above_chance": sum(
                q["unmerged_accuracy"] > q["chance_accuracy"] for q in queries.values()
            ),
            "min_gain_points": min_gain,
            "gain_goal_points": GAIN_GOAL_POINTS,
            "gain_met": min_gain is not None and min_gain >= GAIN_GOAL_POINTS,
        },
    }

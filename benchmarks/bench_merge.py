"""Merge strategies side by side on one workload: memory saved, queries at target, wall time.

Runs ``gemel``, ``all`` and ``stem`` with the same seed and epochs per step (base models are
trained once first, and their time is not counted), then ``all`` again with shared tensors
starting as the mean of their members instead of a copy of the first member, to compare the
epochs retraining needs to reach every target.

    .venv/bin/python benchmarks/bench_merge.py [WORKLOAD] [--out DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from gemel.data import base_models
from gemel.merge.run import merge_workload
from gemel.units import format_bytes
from gemel.workload import load_workload

DEFAULT_WORKLOAD = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


def _row(report: dict) -> dict:
    retrain_min = report["retrain_s"] / 60
    return {
        "saved_bytes": report["saved_bytes"],
        "saved_fraction_of_bound": report["saved_fraction_of_bound"],
        "saved_fraction_of_memory": report["saved_bytes"] / report["memory_before_bytes"],
        "queries_at_target": report["queries_at_target"],
        "queries": len(report["queries"]),
        "steps": f"{report['steps_accepted']}/{report['steps_tried']}",
        "wall_s": report["wall_s"],
        "retrain_s": report["retrain_s"],
        "saved_bytes_per_retrain_min": report["saved_bytes"] / retrain_min if retrain_min else 0,
        "epochs": sum(s["epochs"] for s in report["steps"]),
        "all_met_in_steps": [s["stop"] == "met" for s in report["steps"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", nargs="?", type=Path, default=DEFAULT_WORKLOAD)
    ap.add_argument("--out", type=Path, default=Path("out/bench_merge"))
    ap.add_argument("--json", type=Path, help="write the figures as JSON")
    ap.add_argument("--epochs-per-step", type=float, default=3.0)
    ap.add_argument("--time-budget", type=float, help="seconds per strategy run")
    ap.add_argument("--init-epochs", type=float, default=8.0, help="epochs for the init runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    wl = load_workload(args.workload)
    t0 = time.perf_counter()
    base_models(wl)
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"base models ready in {time.perf_counter() - t0:.1f} s (not counted)")

    rows: dict[str, dict] = {}
    for strategy in ("gemel", "all", "stem"):
        out = args.out / strategy
        report = merge_workload(
            wl,
            out,
            strategy=strategy,
            epochs_per_step=args.epochs_per_step,
            seed=args.seed,
            time_budget_s=args.time_budget,
        )
        rows[strategy] = _row(report)
        print(strategy, json.dumps(rows[strategy]))
    inits: dict[str, dict] = {}
    for init in ("first", "mean"):
        out = args.out / f"all-{init}"
        report = merge_workload(
            wl, out, strategy="all", epochs_per_step=args.init_epochs, seed=args.seed, init=init
        )
        (step,) = report["steps"]
        inits[init] = {
            "epochs": step["epochs"],
            "stop": step["stop"],
            "status": step["status"],
            "retrain_s": step["wall_s"],
            "accuracy": step["accuracy"],
        }
        print(f"all, init {init}", json.dumps(inits[init]))

    print("\n| strategy | saved | % of bound | queries at target | wall s | saved / retrain min |")
    print("|---|---:|---:|---:|---:|---:|")
    for s, r in rows.items():
        print(
            f"| {s} | {format_bytes(r['saved_bytes'])} | {100 * r['saved_fraction_of_bound']:.1f}"
            f" | {r['queries_at_target']}/{r['queries']} | {r['wall_s']:.0f}"
            f" | {format_bytes(r['saved_bytes_per_retrain_min'])} |"
        )
    for init, r in inits.items():
        print(f"init {init}: {r['epochs']:.2f} epochs, stop {r['stop']}, step {r['status']}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"workload": str(args.workload), "strategies": rows, "init": inits}, indent=2
            )
        )


if __name__ == "__main__":
    main()

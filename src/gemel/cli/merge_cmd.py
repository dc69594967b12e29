"""``gemel merge``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemel.choices import MERGE_STRATEGIES
from gemel.errors import GemelError
from gemel.units import format_bytes, parse_seconds
from gemel.workload import load_workload


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="find what the models can share, retrain, write a bundle")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--out", type=Path, required=True, help="output folder (bundle + report.json)")
    p.add_argument("--strategy", choices=MERGE_STRATEGIES, default="gemel", help="(default gemel)")
    p.add_argument("--time-budget", metavar="DURATION", help="stop trying steps after e.g. 10m")
    p.add_argument("--max-steps", type=int, metavar="N", help="try at most N steps")
    p.add_argument(
        "--epochs-per-step",
        type=float,
        default=3.0,
        metavar="E",
        help="retraining epochs per step (default 3)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="validation accuracy points above target to require (default 1)",
    )
    p.add_argument(
        "--init",
        choices=("first", "mean"),
        default="first",
        help="shared tensors start as the first member's or the members' mean (default first)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="run seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run journaled in --out")
    p.add_argument(
        "--device", default="cpu", help="where models retrain: cpu, cuda... (default cpu)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.merge.run import merge_workload

    if not 0 <= args.margin < 100:
        raise GemelError(f"--margin must be in [0, 100) accuracy points, not {args.margin:g}")
    workload = load_workload(args.workload)
    report = merge_workload(
        workload,
        args.out,
        strategy=args.strategy,
        time_budget_s=parse_seconds(args.time_budget) if args.time_budget else None,
        max_steps=args.max_steps,
        epochs_per_step=args.epochs_per_step,
        margin=args.margin / 100,
        seed=args.seed,
        init=args.init,
        resume=args.resume,
        device=args.device,
        live=True,
    )
    table = Table(title=f"{args.strategy}: {args.out / 'report.json'}")
    for col in ("query", "unmerged", "merged", "target", "chance", ""):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q, r in report["queries"].items():
        table.add_row(
            q,
            f"{r['unmerged_accuracy']:.3f}",
            f"{r['merged_accuracy']:.3f}",
            f"{r['target']:.3f}",
            f"{r['chance_accuracy']:.3f}",
            "[green]ok[/]" if r["met"] else "[red]below[/]",
        )
    console = Console()
    console.print()
    console.print(table)
    console.print(
        f"memory {format_bytes(report['memory_before_bytes'])} -> "
        f"{format_bytes(report['memory_after_bytes'])}: saved "
        f"{100 * report['saved_fraction_of_bound']:.1f}% of the max-merge bound; "
        f"{report['steps_accepted']}/{report['steps_tried']} steps accepted in "
        f"{report['wall_s']:.0f} s"
    )
    return 0

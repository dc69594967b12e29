"""``gemel evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemel.choices import SPLITS
from gemel.io import check_output_file, write_json_atomic
from gemel.workload import load_workload


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score each query's model of a bundle on a split")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder (merged or not)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the scores as JSON")
    p.add_argument("--split", choices=SPLITS, default="test", help="(default test)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.merge.evaluate import evaluate_bundle

    if args.json:
        check_output_file(args.json, "--json")
    result = evaluate_bundle(load_workload(args.workload), args.bundle, args.split)
    table = Table(title=f"{args.bundle} on the {args.split} split")
    for col in ("query", "accuracy", "chance", "frames"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q, r in result["queries"].items():
        table.add_row(q, f"{r['accuracy']:.3f}", f"{r['chance_accuracy']:.3f}", str(r["frames"]))
    Console().print(table)
    if args.json:
        write_json_atomic(args.json, result)
    return 0

"""``gemel analyze``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gemel.errors import GemelError
from gemel.io import write_json_atomic
from gemel.workload import load_workload


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="find shareable layers and the max-merge bound")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the analysis as JSON")
    p.add_argument("--groups", action="store_true", help="list groups in planner order")
    p.add_argument("--top", type=int, default=10, help="instances to list (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.analyze import analyze
    from gemel.analyze.report import analysis_tables

    if args.top < 0:
        raise GemelError(f"--top must be 0 or more, not {args.top}")
    if args.json is not None and args.json.is_dir():
        raise GemelError(f"{args.json}: is a folder; --json needs a file path")
    analysis = analyze(load_workload(args.workload))
    Console().print(analysis_tables(analysis, top=args.top, groups=args.groups))
    if args.json:
        write_json_atomic(args.json, analysis.to_json())
    return 0

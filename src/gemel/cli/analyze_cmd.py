"""``gemel analyze``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gemel.cli.options import non_negative_int
from gemel.io import check_output_file, write_json_atomic
from gemel.workload import load_workload


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="find shareable layers and the max-merge bound")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the analysis as JSON")
    p.add_argument("--groups", action="store_true", help="list groups in planner order")
    p.add_argument(
        "--top", type=non_negative_int, default=10, help="instances to list (default 10)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.analyze import analyze
    from gemel.analyze.report import analysis_tables

    if args.json is not None:
        check_output_file(args.json, "--json")
    analysis = analyze(load_workload(args.workload))
    Console().print(analysis_tables(analysis, top=args.top, groups=args.groups))
    if args.json:
        write_json_atomic(args.json, analysis.to_json())
    return 0

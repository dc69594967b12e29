"""``gemel diff``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from gemel.cli.options import non_negative_int
from gemel.io import check_output_file, write_json_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff", help="tensors and blocks changed between two bundles, and bytes to fetch"
    )
    p.add_argument("a", type=Path, metavar="BUNDLE_A", help="the bundle an edge box holds")
    p.add_argument("b", type=Path, metavar="BUNDLE_B", help="the bundle to adopt")
    p.add_argument("--json", metavar="OUT", help="write the diff as JSON to OUT ('-': stdout only)")
    p.add_argument(
        "--top", type=non_negative_int, default=20, help="changed tensors to list (default 20)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.merge.bundle_tables import diff_tables
    from gemel.merge.diff import diff_bundles

    if args.json not in (None, "-"):
        check_output_file(args.json, "--json")
    diff = diff_bundles(args.a, args.b)
    if args.json == "-":
        print(json.dumps(diff.to_json(), indent=2))
        return 0
    Console().print(diff_tables(diff, top=args.top))
    if args.json:
        write_json_atomic(args.json, diff.to_json())
    return 0

"""``gemel report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a demo folder's summary and report.html")
    p.add_argument("dir", type=Path, help="a folder written by `gemel demo`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.report import build_report, print_summary, write_html

    report = build_report(args.dir)
    path = write_html(report, args.dir / "report.html")
    console = Console()
    print_summary(report, console)
    console.print(f"wrote {path}")
    return 0

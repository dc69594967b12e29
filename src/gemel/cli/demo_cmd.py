"""``gemel demo``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole flow end to end on the default workload, with a report"
    )
    p.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )
    p.add_argument("--quick", action="store_true", help="a smaller, faster smoke run (<= 3 min)")
    p.add_argument(
        "--workload", type=Path, help="workload YAML file (default: the shipped demo workload)"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA where available, else cpu), cpu or cuda[:N] (default auto)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.demo import FULL, QUICK, run_demo

    base = QUICK if args.quick else FULL
    settings = dataclasses.replace(base, device=args.device)
    run_demo(args.out, quick=args.quick, workload=args.workload, settings=settings)
    return 0

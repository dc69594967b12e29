"""``gemel run``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gemel.choices import BEST_EVICTION_POLICY, EVICTION_POLICIES
from gemel.cli.options import positive_seconds
from gemel.io import check_output_file, write_json_atomic
from gemel.units import format_bytes
from gemel.workload import load_workload

if TYPE_CHECKING:
    from gemel.edge.engine import EdgeEngine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="serve a bundle on the workload's test streams in real time")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--memory-budget", default="all", metavar="LEVEL|SIZE",
        help="min, 50, 75, all (levels from the unmerged models) or a size like 2GiB",
    )  # fmt: skip
    p.add_argument("--duration", default="30s", help="how long to play the streams (default 30s)")
    p.add_argument("--eviction", default=BEST_EVICTION_POLICY, choices=sorted(EVICTION_POLICIES))
    p.add_argument(
        "--sharing", default="time", choices=["time", "space"],
        help="time: round-robin with swaps; space: fixed memory slices, concurrent",
    )  # fmt: skip
    p.add_argument("--order", default="merge", choices=["merge", "given"])
    p.add_argument("--no-prefetch", action="store_true", help="load blocks only when needed")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch size (1, 2, 4, 8)")
    p.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for inference (default: PyTorch's; 1 on a busy machine)",
    )  # fmt: skip
    p.add_argument("--profile", type=Path, help="seed the scheduler from this profile")
    p.add_argument(
        "--live-updates", action="store_true",
        help="adopt newer bundles published in the bundle folder while running",
    )  # fmt: skip
    p.add_argument("--json", type=Path, metavar="OUT", help='write {"runs": [...]} here')
    p.set_defaults(func=run)


def _status_table(engine: EdgeEngine, now: float) -> Table:
    bm = engine.blocks
    table = Table(
        title=f"t={now:6.1f}s  device memory {format_bytes(bm.used_bytes)} of "
        f"{format_bytes(bm.budget_bytes)}  loads {bm.loads}  evictions {bm.evictions}"
    )
    for col in ("query", "arrived", "taken", "skipped", "batch"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q, s in engine.streams.items():
        arrived = s.arrived(now)
        table.add_row(
            q, str(arrived), str(s.taken), str(max(0, s.last_taken + 1 - s.taken)),
            str(engine.scheduler.batch.get(q, 1)),
        )  # fmt: skip
    return table


def run(args: argparse.Namespace) -> int:
    from gemel.edge.feeds import workload_feeds
    from gemel.edge.profile import read_profile
    from gemel.edge.profiler import set_threads
    from gemel.edge.runtime import run_bundle

    if args.json:
        check_output_file(args.json, "--json")
    set_threads(args.threads)
    wl = load_workload(args.workload)
    duration = positive_seconds(args.duration, "--duration")
    console = Console(stderr=True)
    with console.status("decoding the test streams"):
        feeds = workload_feeds(wl, wl.query_names, duration)
    profile = read_profile(args.profile) if args.profile else None
    last = [0.0]
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def status(engine: EdgeEngine, now: float) -> None:
            wall = time.perf_counter()
            if wall - last[0] >= 0.5:
                last[0] = wall
                live.update(_status_table(engine, now), refresh=True)

        record = run_bundle(
            args.bundle, feeds, device=args.device, memory_budget=args.memory_budget,
            duration_s=duration, eviction=args.eviction, order=args.order, sharing=args.sharing,
            prefetch=not args.no_prefetch, max_batch=args.max_batch, profile=profile,
            live_updates=args.live_updates, status=status,
        )  # fmt: skip
    table = Table(title=f"{record['strategy']} @ {record['memory_level']} "
                  f"({format_bytes(record['budget_bytes'])}): {record['swaps']} swaps, "
                  f"{format_bytes(record['swap_bytes'])} swapped")  # fmt: skip
    for col in ("query", "frames", "processed", "accuracy"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for q, v in record["queries"].items():
        table.add_row(q, str(v["frames_total"]), str(v["frames_processed"]), f"{v['accuracy']:.3f}")
    Console().print(table)
    if args.json:
        write_json_atomic(args.json, {"runs": [record]})
    return 0

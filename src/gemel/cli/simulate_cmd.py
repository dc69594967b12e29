"""``gemel simulate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemel.choices import BEST_EVICTION_POLICY, EVICTION_POLICIES
from gemel.cli.options import positive_seconds
from gemel.errors import GemelError
from gemel.io import check_output_file, write_json_atomic
from gemel.units import format_bytes
from gemel.workload import load_workload


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="what-if runs of bundles from a profile, in seconds")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument(
        "--bundle", type=Path, action="append", required=True,
        help="bundle folder (repeat to compare strategies side by side)",
    )  # fmt: skip
    p.add_argument("--profile", type=Path, help="profile JSON (default: measure the first bundle)")
    p.add_argument("--device", default="cpu", help="device to profile on when no --profile")
    p.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for inference (default: PyTorch's; 1 on a busy machine)",
    )  # fmt: skip
    p.add_argument(
        "--memory-budget", default="min,50,75", metavar="LIST",
        help="comma-separated levels (min, 50, 75, all) or sizes (default min,50,75)",
    )  # fmt: skip
    p.add_argument("--fps", default=None, metavar="LIST", help="comma-separated stream rates")
    p.add_argument(
        "--sharing", default="time", metavar="LIST", help="time, space or time,space (default time)"
    )
    p.add_argument("--duration", default="30s", help="simulated time (default 30s)")
    p.add_argument("--eviction", default=BEST_EVICTION_POLICY, choices=sorted(EVICTION_POLICIES))
    p.add_argument("--json", type=Path, metavar="OUT", help='write {"runs": [...]} here')
    p.add_argument("--plot", type=Path, metavar="PNG", help="plot accuracy and frames processed")
    p.set_defaults(func=run)


def _fps_list(text: str | None) -> list[float | None]:
    if not text:
        return [None]
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise GemelError(f"--fps: expected numbers like 5,10,30, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise GemelError("--fps: rates must be positive")
    return list(values)


def _list(text: str, option: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise GemelError(f"{option}: expected a comma-separated list, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    from gemel.edge.feeds import frame_sizes, workload_feeds
    from gemel.edge.plots import plot_format, plot_runs
    from gemel.edge.profile import read_profile
    from gemel.edge.profiler import profile_bundle, set_threads
    from gemel.edge.simulate import simulate_bundles

    if args.json:
        check_output_file(args.json, "--json")
    if args.plot:
        check_output_file(args.plot, "--plot")
        plot_format(args.plot)
    set_threads(args.threads)
    wl = load_workload(args.workload)
    duration = positive_seconds(args.duration, "--duration")
    budgets = _list(args.memory_budget, "--memory-budget")
    sharing = _list(args.sharing, "--sharing")
    unknown = [s for s in sharing if s not in ("time", "space")]
    if unknown:
        raise GemelError(f"--sharing: {unknown[0]!r} is not time or space")
    fps_values = _fps_list(args.fps)
    console = Console(stderr=True)
    with console.status("simulating") as status:
        status.update("decoding the test streams")
        feeds = workload_feeds(wl, wl.query_names)
        if args.profile:
            profile = read_profile(args.profile)
        else:
            status.update(f"profiling {args.bundle[0]} on {args.device}")
            sizes = frame_sizes(feeds)
            profile = profile_bundle(args.bundle[0], args.device, repeats=3, frame_size=sizes)
        runs = simulate_bundles(
            args.bundle, profile, feeds, memory_budgets=budgets, fps_values=fps_values,
            sharing=sharing,
            duration_s=duration, eviction=args.eviction,
            progress=lambda msg: status.update(f"simulating {msg}"),
        )  # fmt: skip
    table = Table(title=f"simulated on the profile of {profile.device}")
    for col in ("strategy", "sharing", "budget", "fps", "swaps", "swapped", "processed",
                "accuracy"):  # fmt: skip
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for r in runs:
        table.add_row(
            r["strategy"], r["sharing"], f"{r['memory_level']} ({format_bytes(r['budget_bytes'])})",
            "-" if r["fps"] is None else f"{r['fps']:g}", str(r["swaps"]),
            format_bytes(r["swap_bytes"]), f"{r['frames_processed_fraction']:.3f}",
            f"{r['accuracy']:.3f}",
        )  # fmt: skip
    Console().print(table)
    if args.json:
        write_json_atomic(args.json, {"runs": runs})
    if args.plot:
        plot_runs(runs, args.plot)
    return 0

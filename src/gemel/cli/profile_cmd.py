"""``gemel profile``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gemel.cli.options import positive_int
from gemel.io import check_output_file, write_json_atomic
from gemel.units import format_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a bundle's block loads and model runs on a device")
    p.add_argument("bundle", type=Path, help="bundle folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", type=Path, metavar="OUT", required=True, help="write the profile here")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed runs per figure (median)")
    p.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for inference (default: PyTorch's; 1 on a busy machine)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.edge.profiler import profile_bundle, set_threads

    check_output_file(args.json, "--json")
    set_threads(args.threads)
    console = Console(stderr=True)
    with console.status("profiling") as status:
        profile = profile_bundle(
            args.bundle,
            args.device,
            repeats=args.repeats,
            progress=lambda msg: status.update(f"profiling: {msg}"),
        )
    write_json_atomic(args.json, profile.model_dump(mode="json"))
    table = Table(title=f"{args.bundle} on {profile.device}")
    for col in ("query", "weights", "batch", "run ms", "activations"):
        table.add_column(col, justify="right" if col != "query" else "left")
    for q, qp in profile.queries.items():
        for b, cost in qp.batches.items():
            table.add_row(
                q, format_bytes(qp.weight_bytes), str(b), f"{cost.run_s * 1000:.2f}",
                format_bytes(cost.activation_bytes),
            )  # fmt: skip
    Console().print(table)
    Console().print(
        f"{len(profile.blocks)} blocks, load bandwidth "
        f"{profile.load_bytes_per_s / 1e9:.2f} GB/s, turn overhead "
        f"{profile.overhead_s * 1000:.3f} ms, "
        f"framework memory {format_bytes(profile.overhead_bytes)}"
    )
    return 0

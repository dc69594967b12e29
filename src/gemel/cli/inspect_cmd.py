"""``gemel inspect``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from gemel.cli.options import non_negative_int
from gemel.io import check_output_file, write_json_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="memory, blocks and shared layers of a bundle")
    p.add_argument("bundle", type=Path, help="bundle folder")
    p.add_argument(
        "--json", metavar="OUT", help="write the figures as JSON to OUT ('-': stdout only)"
    )
    p.add_argument(
        "--top", type=non_negative_int, default=20, help="shared layers to list (default 20)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gemel.merge.bundle_tables import inspect_tables
    from gemel.merge.manifest import read_manifest
    from gemel.merge.memory import bundle_memory, shared_layers

    if args.json not in (None, "-"):
        check_output_file(args.json, "--json")
    manifest = read_manifest(args.bundle)
    memory = bundle_memory(manifest)
    shared = shared_layers(manifest)
    if args.json == "-":
        print(json.dumps(_as_json(manifest, memory, shared), indent=2))
        return 0
    Console().print(inspect_tables(manifest, memory, shared, top=args.top))
    if args.json:
        write_json_atomic(args.json, _as_json(manifest, memory, shared))
    return 0


def _as_json(manifest, memory, shared) -> dict:
    return {
        "workload": manifest.workload,
        "weights": manifest.weights,
        "weights_bytes": manifest.weights_nbytes,
        **memory.to_json(),
        "blocks": [
            {
                "block": b.name,
                "queries": list(b.queries),
                "bytes": b.nbytes,
                "tensors": len(b.tensors),
            }
            for b in manifest.blocks
        ],
        "shared_layers": [s.to_json() for s in shared],
        "merge": manifest.merge.to_json(),
        "extra": manifest.extra,
    }

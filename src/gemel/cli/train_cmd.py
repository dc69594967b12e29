"""``gemel train``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gemel.io import check_output_file, write_json_atomic
from gemel.workload import Workload, load_workload

if TYPE_CHECKING:
    from gemel.data.train import BaseRecord


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the base model of every query that has none yet")
    p.add_argument("workload", type=Path, help="workload YAML file")
    p.add_argument("--query", action="append", metavar="NAME", help="only this query (repeatable)")
    p.add_argument(
        "--finetune", action="store_true", help="train from the workload's checkpoints too"
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the records as JSON")
    p.add_argument("--device", default="cpu", help="where models train: cpu, cuda... (default cpu)")
    p.set_defaults(func=run)


def records_table(wl: Workload, records: dict[str, BaseRecord]) -> Table:
    """Per query: model, task, accuracy on val and test against chance, training time."""
    t = Table(title=f"base models of {wl.name}")
    for col in ("query", "model", "task", "val", "test", "chance (test)", "epochs", "train s"):
        t.add_column(col, justify="left" if col in ("query", "model", "task") else "right")
    for name, r in records.items():
        q = wl.query(name)
        task = wl.task_of(q)
        t.add_row(
            name,
            q.model.label,
            f"{task.kind}({','.join(task.classes)})",
            f"{r.val_accuracy:.3f}",
            f"{r.unmerged_accuracy:.3f}",
            f"{r.chance_accuracy:.3f}",
            str(r.epochs),
            f"{r.train_seconds:.1f}",
        )
    return t


def run(args: argparse.Namespace) -> int:
    from gemel.data.train import base_models, queries_to_train

    if args.json:
        check_output_file(args.json, "--json")
    wl = load_workload(args.workload)
    names = queries_to_train(wl, args.query, args.device)  # fails before the progress bars
    console = Console()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        bars: dict[str, int] = {}

        def progress(query: str, done: int, total: int) -> None:
            if query not in bars:
                bars[query] = bar.add_task(f"train {query}", total=total)
            bar.update(bars[query], completed=done)

        records = base_models(
            wl, queries=names, finetune=args.finetune, progress=progress, device=args.device
        )
    console.print(records_table(wl, records))
    if args.json:
        write_json_atomic(args.json, {name: r.to_json() for name, r in records.items()})
    return 0

"""The report's terminal summary (rich tables)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from gemel.report.tables import report_tables


def print_summary(report: dict[str, Any], console: Console | None = None) -> None:
    """Print every table of the report."""
    console = console or Console()
    kind = "quick demo" if report["quick"] else "demo"
    console.print(
        f"\n[bold]gemel {kind}[/]: workload {report['workload']!r} on {report['device']}"
        f" in {report['dir']}"
    )
    for t in report_tables(report):
        table = Table(title=t.title)
        for i, col in enumerate(t.columns):
            table.add_column(col, justify="left" if i == 0 else "right")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)

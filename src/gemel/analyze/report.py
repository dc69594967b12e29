"""Readable tables of an analysis for the terminal."""

from __future__ import annotations

from rich.console import Group as RichGroup
from rich.table import Table

from gemel.analyze.analysis import Analysis
from gemel.units import format_bytes


def analysis_tables(analysis: Analysis, *, top: int = 10, groups: bool = False) -> RichGroup:
    """Per-query memory, the heaviest instances (or all groups) and the max-merge bound."""
    per_query = Table(title=f"workload {analysis.workload!r}: {len(analysis.queries)} queries")
    for col in ("query", "model", "params", "bytes", "shareable", "mergeable"):
        per_query.add_column(col, justify="left" if col in ("query", "model") else "right")
    for q in analysis.queries:
        per_query.add_row(
            q.name,
            q.model,
            f"{q.params:,}",
            format_bytes(q.param_bytes),
            format_bytes(q.shareable_bytes),
            format_bytes(q.mergeable_bytes),
        )
    per_query.add_section()
    per_query.add_row(
        "total",
        "",
        f"{sum(q.params for q in analysis.queries):,}",
        format_bytes(analysis.total_param_bytes),
        format_bytes(sum(q.shareable_bytes for q in analysis.queries)),
        format_bytes(sum(q.mergeable_bytes for q in analysis.queries)),
    )
    parts: list[Table | str] = [per_query]
    if groups:
        t = Table(title=f"{len(analysis.groups)} groups in planner order")
        for col in ("#", "kind", "instances", "queries", "saves"):
            t.add_column(col, justify="right" if col in ("#", "instances", "saves") else "left")
        for g in analysis.groups:
            t.add_row(
                str(g.index),
                g.kind,
                str(len(g.instances)),
                ", ".join(sorted(g.queries)),
                format_bytes(g.savings),
            )
        parts.append(t)
    else:
        shown = analysis.instances[:top]
        t = Table(title=f"heaviest {len(shown)} of {len(analysis.instances)} instances")
        for col in ("layer", "members", "bytes", "saves"):
            t.add_column(col, justify="right" if col in ("bytes", "saves") else "left")
        for inst in shown:
            members = ", ".join(f"{q}:{p}" for q, p in inst.members)
            t.add_row(
                inst.signature.describe(),
                members,
                format_bytes(inst.nbytes),
                format_bytes(inst.savings),
            )
        parts.append(t)
    parts.append(
        f"max merge: saves [bold]{format_bytes(analysis.max_savings_bytes)}[/bold] of "
        f"{format_bytes(analysis.total_param_bytes)} "
        f"([bold]{100 * analysis.max_savings_fraction:.1f}%[/bold])"
    )
    return RichGroup(*parts)

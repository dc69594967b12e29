"""The report's tables as plain data (title, columns, rows of strings), rendered by both the
terminal summary and the HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemel.units import format_bytes


@dataclass(frozen=True)
class TextTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _acc(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def goals_table(report: dict[str, Any]) -> TextTable:
    g = report["goals"]
    gain = g["min_gain_points"]
    yes = {True: "met", False: "NOT met"}
    if report["quick"]:
        yes = {True: "(smoke run)", False: "(smoke run)"}
    n = len(report["queries"])
    rows = (
        (
            "base models above chance (test split)",
            f"{g['base_above_chance']} / {n}",
            "all",
            yes[g["base_above_chance"] == n],
        ),
        (
            "memory saved by gemel",
            _pct(g["memory_saved_fraction"]),
            f">= {_pct(g['memory_goal'])}",
            yes[g["memory_met"]],
        ),
        (
            "queries at target (gemel, test split)",
            f"{report['strategies']['gemel']['queries_at_target']} / {n}",
            "all",
            yes[g["all_at_target"]],
        ),
        (
            "mean stream accuracy gain at min vs best none",
            "-" if gain is None else f"{gain:+.1f} points",
            f">= {g['gain_goal_points']:.0f} points",
            yes[g["gain_met"]],
        ),
    )
    title = (
        "goals (a quick smoke run: small data, one epoch; not a result)"
        if report["quick"]
        else "goals"
    )
    return TextTable(title, ("goal", "achieved", "required", ""), rows)


def memory_table(report: dict[str, Any]) -> TextTable:
    rows = []
    for s, r in report["strategies"].items():
        rows.append(
            (
                s,
                format_bytes(r["memory_before_bytes"]),
                format_bytes(r["memory_after_bytes"]),
                _pct(r["saved_fraction"]),
                f"{r['queries_at_target']} / {len(report['queries'])}",
                f"{r['steps_accepted']} / {r['steps_tried']}",
                f"{r['wall_s']:.0f}",
            )
        )
    cols = ("strategy", "memory before", "after", "saved", "at target", "steps ok", "merge s")
    return TextTable("merging: memory and accuracy targets", cols, tuple(rows))


def queries_table(report: dict[str, Any]) -> TextTable:
    rows = []
    for q, r in report["queries"].items():
        rows.append(
            (
                q,
                _acc(r["unmerged_accuracy"]),
                _acc(r["target"]),
                _acc(r["chance_accuracy"]),
                _acc(r.get("gemel_accuracy")) + ("" if r.get("gemel_met", True) else " (below)"),
                _acc(r.get("all_accuracy")) + ("" if r.get("all_met", True) else " (below)"),
                _tried(r.get("all_step")),
            )
        )
    cols = ("query", "unmerged", "target", "chance", "gemel", "all", "all's step (val)")
    return TextTable("per-query accuracy on the test split", cols, tuple(rows))


def _tried(step: dict[str, Any] | None) -> str:
    """A query's validation accuracy in a step against its validation target."""
    if step is None:
        return "-"
    mark = ">=" if step["met"] else "<"
    return f"{step['val_accuracy']:.3f} {mark} {step['val_target']:.3f}"


def _run_rows(runs: list[dict[str, Any]]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            r["strategy"],
            r["sharing"],
            f"{r['memory_level']} ({format_bytes(r['budget_bytes'])})",
            str(r["swaps"]),
            format_bytes(r["swap_bytes"]),
            f"{sum(v['frames_processed'] for v in r['queries'].values())} / "
            f"{sum(v['frames_total'] for v in r['queries'].values())}",
            _acc(r["accuracy"]),
        )
        for r in runs
    )


RUN_COLUMNS = ("strategy", "sharing", "budget", "swaps", "swapped", "frames processed", "accuracy")


def simulate_table(report: dict[str, Any]) -> TextTable:
    return TextTable(
        "simulated: frames processed and mean stream accuracy per memory level",
        RUN_COLUMNS,
        _run_rows(report["simulate"]),
    )


def fps_table(report: dict[str, Any]) -> TextTable:
    rows = tuple((f"{f:g}", "-" if g is None else f"{g:+.1f}") for f, g in report["gain_by_fps"])
    return TextTable(
        "accuracy gain of gemel over the best none at min, per stream rate",
        ("fps", "gain (points)"),
        rows,
    )


def runtime_table(report: dict[str, Any]) -> TextTable:
    rows = _run_rows(report["runtime"])
    sims = [r for r in report["runtime_simulated"] if r is not None]
    rows += tuple(("(simulated) " + row[0], *row[1:]) for row in _run_rows(sims))
    return TextTable(
        "the real runtime (and the simulator on the same configuration)", RUN_COLUMNS, rows
    )


def turn_costs_table(report: dict[str, Any]) -> TextTable:
    rows = tuple(
        (
            c["query"],
            format_bytes(c["weight_bytes"]),
            f"{1e3 * c['copy_s']:.2f}",
            f"{1e3 * c['run_s']:.2f}",
            f"{c['copy_s'] / c['run_s']:.2f}",
        )
        for c in report["turn_costs"]
    )
    return TextTable(
        f"a time-sharing turn on {report['device']}: copying a query's weights (at the profile's "
        "copy bandwidth) against running a batch of one; merging wins at min only where copies "
        "weigh",
        ("query", "weights", "copy ms", "run ms", "copy / run"),
        rows,
    )


def stages_table(report: dict[str, Any]) -> TextTable:
    rows = tuple(
        (s["stage"], f"{s['wall_s']:.1f}", "-" if s["budget_s"] is None else f"{s['budget_s']:.0f}")
        for s in report["stages"]
    )
    total = report.get("wall_s")
    if total is not None:
        rows += (("total", f"{total:.1f}", ""),)
    return TextTable("wall time per stage (s)", ("stage", "wall s", "budget s"), rows)


def report_tables(report: dict[str, Any]) -> list[TextTable]:
    """Every table of the report, in reading order."""
    return [
        goals_table(report),
        memory_table(report),
        queries_table(report),
        simulate_table(report),
        fps_table(report),
        turn_costs_table(report),
        runtime_table(report),
        stages_table(report),
    ]

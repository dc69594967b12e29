"""The report's plots, drawn with matplotlib (Agg) into PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024
LEVELS = ("min", "50", "75")


def _png(draw: Callable[[Any], None], size: tuple[float, float] = (7.0, 3.6)) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buf.getvalue()


def memory_per_query(report: dict[str, Any]) -> bytes:
    """Each query's parameters before merging, and its private part after (gemel, all)."""
    strategies = report["strategies"]
    names = list(report["queries"])
    series = [
        ("unmerged", {q: v["params"] for q, v in strategies["gemel"]["per_query_bytes"].items()})
    ]
    for s in ("gemel", "all"):
        if s in strategies:
            pq = strategies[s]["per_query_bytes"]
            series.append((f"{s}: private", {q: v["params"] - v["shared"] for q, v in pq.items()}))

    def draw(ax: Any) -> None:
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
            ax.bar(xs, [values[q] / MIB for q in names], width, label=label)
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
        ax.set_ylabel("MiB of parameters")
        shared = {
            s: (strategies[s]["bundle_distinct_param_bytes"]) / MIB
            for s in ("gemel", "all")
            if s in strategies
        }
        ax.set_title(
            "memory per query; distinct total: "
            + ", ".join(f"{s} {v:.1f} MiB" for s, v in shared.items()),
            fontsize=9,
        )
        ax.legend(fontsize=8)

    return _png(draw)


def savings_over_time(report: dict[str, Any]) -> bytes:
    """Memory saved by the gemel search against its retraining time."""
    gemel = report["strategies"]["gemel"]
    points = gemel["savings_over_time"]

    def draw(ax: Any) -> None:
        ax.step([p[0] for p in points], [p[1] / MIB for p in points], where="post", marker="o")
        before = gemel["memory_before_bytes"] / MIB
        goal = report["goals"]["memory_goal"]
        ax.axhline(
            goal * before, color="grey", linestyle="--", label=f"goal: {goal:.0%} of the unmerged"
        )
        ax.set_xlabel("search time (s of retraining)")
        ax.set_ylabel("MiB saved")
        ax.legend(fontsize=8)

    return _png(draw)


def accuracy_per_level(report: dict[str, Any]) -> bytes:
    """Mean and per-stream accuracy per memory level and strategy (simulated)."""
    rows = report["simulate"]
    series = list(dict.fromkeys((r["strategy"], r["sharing"]) for r in rows))

    def draw(ax: Any) -> None:
        width = 0.8 / max(1, len(series))
        for i, (strategy, sharing) in enumerate(series):
            for j, level in enumerate(LEVELS):
                match = [
                    r
                    for r in rows
                    if (r["strategy"], r["sharing"]) == (strategy, sharing)
                    and r["memory_level"] == level
                ]
                if not match:
                    continue
                x = j + (i - (len(series) - 1) / 2) * width
                r = match[0]
                label = f"{strategy} ({sharing})" if j == 0 else None
                ax.bar(x, r["accuracy"], width, color=f"C{i}", alpha=0.7, label=label)
                per = [v["accuracy"] for v in r["queries"].values()]
                ax.scatter([x] * len(per), per, color="black", s=8, zorder=3)
        ax.set_xticks(range(len(LEVELS)), [f"{lv}" for lv in LEVELS])
        ax.set_xlabel("memory level (bars: mean; dots: each stream)")
        ax.set_ylabel("stream accuracy")
        ax.set_ylim(0, 1.2)
        ax.legend(fontsize=8, loc="upper center", ncol=len(series))

    return _png(draw)


def gain_against_fps(report: dict[str, Any]) -> bytes:
    """gemel's mean stream accuracy minus the best no-merging one, at ``min``, per rate."""
    points = [p for p in report["gain_by_fps"] if p[1] is not None]

    def draw(ax: Any) -> None:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="gemel - none")
        ax.axhline(0, color="grey", linewidth=0.8)
        goal = report["goals"]["gain_goal_points"]
        ax.axhline(goal, color="grey", linestyle="--", label=f"goal: +{goal:g} points")
        ax.set_xscale("log")
        ax.set_xticks([p[0] for p in points], [f"{p[0]:g}" for p in points])
        ax.minorticks_off()
        ax.set_xlabel("frames per second per stream")
        ax.set_ylabel("accuracy gain (points)")
        ax.set_title(
            "at the min memory level, against the best of time and space sharing", fontsize=9
        )
        ax.legend(fontsize=8)

    return _png(draw)


PLOTS = {
    "Memory per query, before and after merging": memory_per_query,
    "Memory saved over search time": savings_over_time,
    "Stream accuracy per memory level and strategy": accuracy_per_level,
    "Accuracy gain against fps": gain_against_fps,
}

"""Plots of simulated or measured runs: accuracy and frames processed per strategy, against the
memory budget and against the stream rate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gemel.errors import GemelError
from gemel.io import atomic_path

PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: str | Path) -> str:
    """The image format ``path``'s suffix names (none: png); an error for any other."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in PLOT_FORMATS:
        raise GemelError(f"{path}: cannot plot to a .{fmt} file; use .png, .svg or .pdf")
    return fmt


def plot_runs(runs: Sequence[dict[str, Any]], path: str | Path) -> None:
    """One row per swept variable (memory level, fps); accuracy and frames processed."""
    fmt = plot_format(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = []
    if len({r["memory_level"] for r in runs}) > 1 or len({r["fps"] for r in runs}) == 1:
        sweeps.append(("memory_level", "memory budget"))
    if len({r["fps"] for r in runs}) > 1:
        sweeps.append(("fps", "frames per second"))
    fig, axes = plt.subplots(len(sweeps), 2, figsize=(10, 3.6 * len(sweeps)), squeeze=False)

    def series(r: dict[str, Any]) -> str:
        return r["strategy"] if r["sharing"] == "time" else f"{r['strategy']} ({r['sharing']})"

    strategies = list(dict.fromkeys(series(r) for r in runs))
    for row, (key, label) in enumerate(sweeps):
        xs = list(dict.fromkeys(r[key] for r in runs))
        for strategy in strategies:
            for col, metric in enumerate(("accuracy", "frames_processed_fraction")):
                ys = []
                for x in xs:
                    match = [r[metric] for r in runs if series(r) == strategy and r[key] == x]
                    ys.append(sum(match) / len(match) if match else float("nan"))
                axes[row][col].plot([str(x) for x in xs], ys, marker="o", label=strategy)
        for col, metric in enumerate(("accuracy", "frames processed")):
            ax = axes[row][col]
            ax.set_xlabel(label)
            ax.set_ylabel(metric)
            ax.set_ylim(0, 1.05)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)

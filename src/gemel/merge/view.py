"""The live view of a merge run: the step being tried, savings so far, accuracy vs target."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from gemel.merge.planner.base import StepOutcome
from gemel.units import format_bytes


class MergeView:
    """A rich live display, fed by the merge session (use as a context manager)."""

    def __init__(
        self,
        strategy: str,
        bound_bytes: int,
        targets: dict[str, float],
        accuracy: dict[str, float],
        console: Console | None = None,
    ) -> None:
        self.strategy = strategy
        self.bound = bound_bytes
        self.targets = targets
        self.accuracy = dict(accuracy)
        """validation accuracy of the accepted configuration (during a step: the latest)"""
        self._accepted = dict(accuracy)
        self.saved = 0
        self.step = "starting"
        self.log: list[str] = []
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> MergeView:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._update()
        self._live.__exit__(exc_type, exc, tb)

    def step_started(self, index: int, label: str, retrained: Sequence[str], gain: int) -> None:
        self.step = (
            f"step {index}: {label} (+{format_bytes(gain)}), retraining {', '.join(retrained)}"
        )
        self._update()

    def validated(self, epoch: float, accuracy: dict[str, float]) -> None:
        self.accuracy.update(accuracy)
        self.step = self.step.split(" @ ")[0] + f" @ epoch {epoch:.2f}"
        self._update()

    def step_finished(
        self, outcome: StepOutcome, saved_bytes: int, accuracy: dict[str, float]
    ) -> None:
        self.saved = saved_bytes
        if outcome.accepted:
            self._accepted.update(accuracy)
        self.accuracy = dict(self._accepted)
        failed = f" (missed: {', '.join(outcome.failed)})" if outcome.failed else ""
        self.log.append(f"step {outcome.index} {outcome.label}: {outcome.status}{failed}")
        self.step = "choosing the next step"
        self._update()

    def _update(self) -> None:
        self._live.update(self._render())

    def _render(self) -> Group:
        table = Table(title=f"merge ({self.strategy}): {self.step}", title_justify="left")
        for col in ("query", "val accuracy", "val target", ""):
            table.add_column(col, justify="left" if col == "query" else "right")
        for q, target in self.targets.items():
            acc = self.accuracy.get(q)
            mark = "" if acc is None else "[green]ok[/]" if acc >= target else "[red]below[/]"
            table.add_row(q, "-" if acc is None else f"{acc:.3f}", f"{target:.3f}", mark)
        share = 100 * self.saved / self.bound if self.bound else 0.0
        summary = (
            f"saved {format_bytes(self.saved)} of the {format_bytes(self.bound)} bound "
            f"({share:.1f}%)"
        )
        return Group(*self.log[-8:], table, summary)

"""The planner interface: a strategy proposes steps, a stepper tries them.

A strategy decides *which* layers to try sharing next; the stepper (``MergeSession``) ties
them, retrains, accepts or rolls back, journals and publishes. Strategies therefore stay small
and exact, and can be tested with a stepper whose retraining is faked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from torch import nn

from gemel.analyze.analysis import Instance
from gemel.merge.config import MergeConfig

Status = Literal["accepted", "partial", "rejected"]


@dataclass(frozen=True)
class Candidate:
    """Layers to try sharing in one step, on top of what is accepted."""

    label: str
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class StepOutcome:
    """How a step ended.

    ``accepted``: every retrained query met its target. ``partial``: some missed it, dropped
    out and got their pre-step weights back, and the rest was accepted. ``rejected``: the step
    was rolled back.
    """

    index: int
    label: str
    status: Status
    failed: tuple[str, ...] = ()
    saved_bytes: int = 0
    """bytes this step added to the accepted savings"""
    retrained: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.status != "rejected"


class Stepper(Protocol):
    """What a strategy may ask of the merge session."""

    models: dict[str, nn.Module]
    instances: tuple[Instance, ...]
    """every shareable instance of the workload, heaviest first"""
    config: MergeConfig
    """what is accepted so far"""

    def added_savings(self, instances: Sequence[Instance]) -> int:
        """Bytes that sharing ``instances`` would add to the accepted configuration."""
        ...

    def try_step(self, candidate: Candidate, *, partial: bool = True) -> StepOutcome:
        """Tie, retrain and decide; ``partial=False`` rolls back unless every query meets."""
        ...

    def exhausted(self) -> bool:
        """Whether the time or step budget is spent."""
        ...


class Strategy(ABC):
    """A way of choosing what to share; registered by ``name``."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def run(self, stepper: Stepper) -> None:
        """Propose steps until done or until ``stepper.exhausted()``."""

"""Planner strategies behind one interface, chosen by name."""

from __future__ import annotations

from gemel.errors import GemelError
from gemel.merge.planner.base import Candidate, StepOutcome, Stepper, Strategy
from gemel.merge.planner.baselines import AllStrategy, NoMergeStrategy
from gemel.merge.planner.gemel import GemelStrategy
from gemel.merge.planner.stem import StemStrategy, common_stem

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (GemelStrategy, AllStrategy, StemStrategy, NoMergeStrategy)
}


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        known = ", ".join(STRATEGIES)
        raise GemelError(f"unknown merge strategy {name!r} (choose from {known})") from None


__all__ = [
    "STRATEGIES",
    "AllStrategy",
    "Candidate",
    "GemelStrategy",
    "NoMergeStrategy",
    "StemStrategy",
    "StepOutcome",
    "Stepper",
    "Strategy",
    "common_stem",
    "get_strategy",
]

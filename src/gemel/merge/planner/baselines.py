"""The reference points: ``none`` (no merging) and ``all`` (share every instance at once)."""

from __future__ import annotations

from gemel.merge.planner.base import Candidate, Stepper, Strategy


class NoMergeStrategy(Strategy):
    """Share nothing: the workload's unmerged models, published as a bundle."""

    name = "none"
    summary = "no merging"

    def run(self, stepper: Stepper) -> None:
        return None


class AllStrategy(Strategy):
    """The max-merge baseline: one step that shares every instance, then retrains everything.

    Queries that still miss their target drop out as in any step.
    """

    name = "all"
    summary = "share every instance in one step (max merge), then retrain"

    def run(self, stepper: Stepper) -> None:
        if stepper.instances and not stepper.exhausted():
            stepper.try_step(Candidate("all", stepper.instances))

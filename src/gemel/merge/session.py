"""The merge session: tries the steps a strategy proposes, on live models.

A step ties the candidate's layers on top of the accepted configuration, retrains every query
connected to them through shared layers, and decides:

- every retrained query meets its (validation) target: accepted;
- some miss it: those queries drop out of the candidate's new sharing and get their pre-step
  weights back; the configuration as it would be published is validated again and accepted
  only if every retrained query meets its target (``partial``), else the step is rolled back;
- a rolled-back step leaves every parameter object and value exactly as before it.

Every accepted step is published at once (``publish``), then journaled; a resumed session
replays journaled steps without retraining.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import nn

from gemel.analyze.analysis import Instance
from gemel.errors import GemelError
from gemel.merge.config import Init, Member, MergeConfig
from gemel.merge.journal import Journal
from gemel.merge.planner.base import Candidate, StepOutcome
from gemel.merge.trainer import TrainResult
from gemel.merge.tying import Snapshot, apply_merge, untie


class Retrainer(Protocol):
    """Retrains and validates queries of live models (the real one wraps ``JointTrainer``)."""

    targets: dict[str, float]
    """validation accuracy each query must reach (margin included)"""

    def retrain(
        self,
        models: dict[str, nn.Module],
        queries: Sequence[str],
        *,
        seed: int,
        deadline: float | None,
        on_validate: Callable[[float, dict[str, float]], None] | None,
    ) -> TrainResult: ...

    def validate(
        self, models: dict[str, nn.Module], queries: Sequence[str]
    ) -> dict[str, float]: ...


class SessionView(Protocol):
    """What a live view is told while the session runs."""

    def step_started(self, index: int, label: str, retrained: Sequence[str], gain: int) -> None: ...

    def validated(self, epoch: float, accuracy: dict[str, float]) -> None: ...

    def step_finished(
        self, outcome: StepOutcome, saved_bytes: int, accuracy: dict[str, float]
    ) -> None:
        """``accuracy``: validation accuracy of the step's configuration as published (or as
        it would have been, for a rejected step)."""


Publish = Callable[[int, MergeConfig], str]
"""``(step_index, config) -> where the bundle went``; called while the models hold ``config``"""


def step_seed(seed: int, index: int) -> int:
    """The seed of step ``index`` of a run seeded with ``seed``."""
    digest = hashlib.sha256(f"gemel-step:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def connected_queries(seeds: set[str], config: MergeConfig) -> set[str]:
    """``seeds`` plus every query linked to them through shared layers of ``config``."""
    found = set(seeds)
    grew = True
    while grew:
        grew = False
        for layer in config.shared:
            if layer.queries & found and not layer.queries <= found:
                found |= layer.queries
                grew = True
    return found


def _members_json(instances: Sequence[Instance]) -> list[list[list[str]]]:
    return [[list(m) for m in inst.members] for inst in instances]


class MergeSession:
    """Ties, retrains, decides, publishes and journals the steps of one merge run."""

    def __init__(
        self,
        models: dict[str, nn.Module],
        instances: Sequence[Instance],
        retrainer: Retrainer,
        journal: Journal,
        *,
        publish: Publish | None = None,
        seed: int = 0,
        init: Init = "first",
        max_steps: int | None = None,
        time_budget_s: float | None = None,
        view: SessionView | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.models = models
        self.instances = tuple(instances)
        self.retrainer = retrainer
        self.journal = journal
        self.publish = publish
        self.seed = seed
        self.init = init
        self.max_steps = max_steps
        self.view = view
        self.on_step = on_step
        """called with the step index once a step has tied its layers, before it retrains"""
        self.config = MergeConfig(init=init)
        self._next = 0
        spent = sum(r.get("wall_s", 0.0) for r in journal.steps)
        self.deadline = None if time_budget_s is None else time.monotonic() + time_budget_s - spent

    # -- what strategies ask ------------------------------------------------------------

    def added_savings(self, instances: Sequence[Instance]) -> int:
        """Bytes that sharing ``instances`` would add to the accepted configuration."""
        grown = self.config.add(instances)
        return grown.shared_bytes(self.models) - self.config.shared_bytes(self.models)

    def exhausted(self) -> bool:
        """Whether the step or time budget is spent."""
        if self.max_steps is not None and self._next >= self.max_steps:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def try_step(self, candidate: Candidate, *, partial: bool = True) -> StepOutcome:
        """Try sharing ``candidate`` on top of the accepted configuration (see module doc).

        A candidate must add savings (``added_savings`` > 0); strategies check first.
        """
        if self.added_savings(candidate.instances) <= 0:
            raise ValueError(f"candidate {candidate.label!r} shares nothing new")
        index = self._next
        self._next += 1
        record = self.journal.step(index)
        if record is not None:
            return self._replay(index, candidate, record)
        t0 = time.monotonic()
        before = self.config.shared_bytes(self.models)
        proposed = self.config.add(candidate.instances)
        new_members = sorted(proposed.members - self.config.members)
        retrained = sorted(connected_queries({q for q, _ in new_members}, proposed))
        if self.view:
            self.view.step_started(
                index, candidate.label, retrained, proposed.shared_bytes(self.models) - before
            )
        snapshots = {q: Snapshot.take(self.models, [q]) for q in retrained}
        try:
            untie(self.models, new_members)  # tied copies never alias a pre-step object
            apply_merge(self.models, proposed, init=self.init)
            if self.on_step:
                self.on_step(index)
            result = self.retrainer.retrain(
                self.models,
                retrained,
                seed=step_seed(self.seed, index),
                deadline=self.deadline,
                on_validate=self.view.validated if self.view else None,
            )
            failed = sorted(result.failed)
            published: MergeConfig | None = proposed
            accuracy = {q: o.accuracy for q, o in result.queries.items()}
            if failed:
                published = self._drop_failed(proposed, new_members, failed, partial, snapshots)
                if published is not None:
                    accuracy = self.retrainer.validate(self.models, retrained)
                    if any(accuracy[q] < self.retrainer.targets[q] for q in retrained):
                        published = None
        except BaseException:  # an interrupted step leaves the models as they were
            for snap in snapshots.values():
                snap.restore()
            raise
        if published is None:
            for snap in snapshots.values():
                snap.restore()
        status = "rejected" if published is None else "partial" if failed else "accepted"
        saved = 0 if published is None else published.shared_bytes(self.models) - before
        outcome = StepOutcome(
            index, candidate.label, status, tuple(failed), saved, tuple(retrained)
        )
        bundle = None
        if published is not None:
            self.config = published
            if self.publish:
                bundle = self.publish(index, published)
        self.journal.append_step(
            self._record(candidate, outcome, result, accuracy, bundle, time.monotonic() - t0)
        )
        if self.view:
            self.view.step_finished(outcome, self.config.shared_bytes(self.models), accuracy)
        return outcome

    # -- internals ----------------------------------------------------------------------

    def _drop_failed(
        self,
        proposed: MergeConfig,
        new_members: list[Member],
        failed: list[str],
        partial: bool,
        snapshots: dict[str, Snapshot],
    ) -> MergeConfig | None:
        """The configuration without the failed queries' new sharing, applied; None: reject."""
        if not partial:
            return None
        dropped = [m for m in new_members if m[0] in failed]
        published = proposed.without(dropped)
        if published.shared_bytes(self.models) <= self.config.shared_bytes(self.models):
            return None
        for q in failed:
            snapshots[q].restore()
        apply_merge(self.models, published, init="first")  # re-tie what a restore split up
        return published

    def _record(
        self,
        candidate: Candidate,
        outcome: StepOutcome,
        result: TrainResult,
        published_accuracy: dict[str, float],
        bundle: str | None,
        wall_s: float,
    ) -> dict[str, Any]:
        return {
            "index": outcome.index,
            "label": outcome.label,
            "instances": _members_json(candidate.instances),
            "status": outcome.status,
            "retrained": list(outcome.retrained),
            "failed": list(outcome.failed),
            "seed": step_seed(self.seed, outcome.index),
            "samples": result.samples,
            "epochs": result.epochs,
            "stop": result.stop,
            "wall_s": wall_s,
            "saved_bytes": outcome.saved_bytes,
            "total_saved_bytes": self.config.shared_bytes(self.models),
            "accuracy": {
                q: {
                    **o.to_json(),
                    "accuracy_published": published_accuracy.get(q, o.accuracy),
                }
                for q, o in result.queries.items()
            },
            "history": result.history,
            "config": self.config.to_json(),
            "bundle": bundle,
        }

    def _replay(self, index: int, candidate: Candidate, record: dict[str, Any]) -> StepOutcome:
        if record.get("instances") != _members_json(candidate.instances):
            raise GemelError(
                f"{self.journal.path}: cannot resume: step {index} was {record.get('label')!r}, "
                f"this run proposes {candidate.label!r} (the workload or models changed)"
            )
        self.config = MergeConfig.model_validate(record["config"])
        outcome = StepOutcome(
            index,
            record["label"],
            record["status"],
            tuple(record["failed"]),
            record["saved_bytes"],
            tuple(record["retrained"]),
        )
        if self.view:
            accuracy = {q: a["accuracy_published"] for q, a in record["accuracy"].items()}
            self.view.step_finished(outcome, record["total_saved_bytes"], accuracy)
        return outcome

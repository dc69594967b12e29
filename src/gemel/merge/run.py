"""``merge_workload``: plan and retrain a workload's merge, publish bundles, write the report.

The output folder holds the final bundle (``manifest.json`` + weights), ``report.json``,
``journal.jsonl`` and, under ``steps/step-NNN/``, the bundle of every accepted step. The
latest good configuration is always on disk: each accepted step is published (there and in
the folder itself) before the journal records it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from gemel.analyze import analyze_models
from gemel.data import BaseRecord, QueryData, base_models, load_split
from gemel.data.train import split_accuracy
from gemel.errors import GemelError
from gemel.io import write_json_atomic
from gemel.merge.bundle import load_bundle, save_bundle
from gemel.merge.config import Init, MergeConfig
from gemel.merge.evaluate import evaluate_models
from gemel.merge.journal import Journal
from gemel.merge.planner import get_strategy
from gemel.merge.session import MergeSession
from gemel.merge.trainer import (
    JointTrainer,
    TrainerConfig,
    TrainQuery,
    TrainResult,
    unique_parameters,
)
from gemel.merge.view import MergeView
from gemel.models import check_device
from gemel.workload import Workload

REPORT_NAME = "report.json"


class WorkloadRetrainer:
    """The session's retrainer: a :class:`JointTrainer` over the queries' train/val splits."""

    def __init__(
        self,
        data: dict[str, tuple[QueryData, QueryData]],
        targets: dict[str, float],
        trainer: JointTrainer,
    ) -> None:
        self.data = data
        self.targets = targets
        self.trainer = trainer

    def _queries(self, models: dict[str, nn.Module], names: Sequence[str]) -> list[TrainQuery]:
        out = []
        for q in names:
            train, val = self.data[q]
            task = train.task
            out.append(
                TrainQuery(
                    name=q,
                    model=models[q],
                    train_inputs=train.inputs,
                    train_targets=train.targets,
                    val_inputs=val.inputs,
                    val_targets=val.targets,
                    loss=task.training_loss,
                    accuracy=partial(
                        split_accuracy, task=task, batch_size=self.trainer.config.eval_batch_size
                    ),
                    target=self.targets[q],
                )
            )
        return out

    def retrain(
        self,
        models: dict[str, nn.Module],
        queries: Sequence[str],
        *,
        seed: int,
        deadline: float | None,
        on_validate: Callable[[float, dict[str, float]], None] | None,
    ) -> TrainResult:
        return self.trainer.train(
            self._queries(models, queries), seed=seed, deadline=deadline, on_validate=on_validate
        )

    def validate(self, models: dict[str, nn.Module], queries: Sequence[str]) -> dict[str, float]:
        return self.trainer.validate(self._queries(models, queries))


def param_bytes(models: dict[str, nn.Module]) -> int:
    """Bytes of the distinct parameter tensors of ``models``, each counted once."""
    return sum(p.numel() * p.element_size() for p in unique_parameters(list(models.values())))


def val_target(record: BaseRecord, fraction: float, margin: float) -> float:
    """The validation accuracy a query must reach: ``fraction`` of its own, plus ``margin``."""
    return min(1.0, fraction * record.val_accuracy + margin)


def merge_workload(
    workload: Workload,
    out_dir: str | Path,
    *,
    strategy: str = "gemel",
    time_budget_s: float | None = None,
    max_steps: int | None = None,
    epochs_per_step: float = 3.0,
    margin: float = 0.01,
    seed: int = 0,
    init: Init = "first",
    lr: float | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    live: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Merge ``workload``'s models into ``out_dir``; returns the report (also in report.json).

    Base models come from :func:`gemel.data.base_models` (trained first if needed). Decisions
    use the validation split: a query must reach ``target × its unmerged val accuracy +
    margin``; the report's figures are on the test split. ``resume`` continues the run
    journaled in ``out_dir`` (same strategy, seed and settings) without redoing its steps.
    ``device`` holds the models while they retrain (bit-for-bit resumes are promised on the
    CPU). ``on_step(index)`` runs in every step once its layers are tied.
    """
    planner = get_strategy(strategy)
    if epochs_per_step <= 0:
        raise GemelError(f"epochs per step must be positive, not {epochs_per_step}")
    if max_steps is not None and max_steps < 0:
        raise GemelError(f"max steps must be 0 or more, not {max_steps}")
    if not 0 <= margin < 1:
        raise GemelError(f"margin must be in [0, 1), not {margin}")
    check_device(device)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GemelError(f"{out_dir}: exists and is not a folder")
    t0 = time.monotonic()
    records = base_models(workload, device=device)
    train_cfg = workload.defaults.train
    trainer = JointTrainer(
        TrainerConfig(
            epochs=epochs_per_step,
            batch_size=batch_size or train_cfg.batch_size,
            lr=lr if lr is not None else train_cfg.lr / 2,
            weight_decay=train_cfg.weight_decay,
        )
    )
    header = {
        "workload": workload.name,
        "strategy": strategy,
        "seed": seed,
        "init": init,
        "epochs_per_step": epochs_per_step,
        "margin": margin,
        "lr": trainer.config.lr,
        "batch_size": trainer.config.batch_size,
    }
    journal = Journal.open(out_dir, header, resume=resume)
    base = {q: r.load_model(workload, device=device) for q, r in records.items()}
    analysis = analyze_models(
        base, workload.name, {q.name: q.model.label for q in workload.queries}
    )
    fractions = {q.name: workload.target_of(q) for q in workload.queries}
    targets = {q: val_target(r, fractions[q], margin) for q, r in records.items()}
    data = {q: (load_split(workload, q, "train"), load_split(workload, q, "val")) for q in records}
    models = base
    published = [s for s in journal.steps if s.get("bundle")]
    if published:
        models = load_bundle(out_dir / published[-1]["bundle"], device=device)

    def publish(index: int, config: MergeConfig) -> str:
        rel = f"steps/step-{index:03d}"
        extra = {"strategy": strategy, "step": index}
        save_bundle(out_dir / rel, session.models, workload=workload, config=config, extra=extra)
        save_bundle(out_dir, session.models, workload=workload, config=config, extra=extra)
        return rel

    session = MergeSession(
        models,
        analysis.instances,
        WorkloadRetrainer(data, targets, trainer),
        journal,
        publish=publish,
        seed=seed,
        init=init,
        max_steps=max_steps,
        time_budget_s=time_budget_s,
        on_step=on_step,
    )
    view = None
    if live:
        base_val = {q: r.val_accuracy for q, r in records.items()}
        view = MergeView(strategy, analysis.max_savings_bytes, targets, base_val)
    session.view = view
    with view or nullcontext():
        planner.run(session)
    save_bundle(
        out_dir,
        session.models,
        workload=workload,
        config=session.config,
        extra={"strategy": strategy, "final": True},
    )
    test = evaluate_models(workload, session.models, "test")
    report = _report(
        workload, header, analysis, records, fractions, targets, session, test, journal
    )
    report["wall_s"] = time.monotonic() - t0
    write_json_atomic(out_dir / REPORT_NAME, report)
    return report


def _report(
    workload: Workload,
    header: dict[str, Any],
    analysis: Any,
    records: dict[str, BaseRecord],
    fractions: dict[str, float],
    targets: dict[str, float],
    session: MergeSession,
    test: dict[str, dict[str, Any]],
    journal: Journal,
) -> dict[str, Any]:
    before = analysis.total_param_bytes
    after = param_bytes(session.models)
    bound = analysis.max_savings_bytes
    queries = {}
    for q, r in records.items():
        target = fractions[q] * r.unmerged_accuracy
        merged = test[q]["accuracy"]
        queries[q] = {
            "unmerged_accuracy": r.unmerged_accuracy,
            "merged_accuracy": merged,
            "target": target,
            "target_fraction": fractions[q],
            "chance_accuracy": test[q]["chance_accuracy"],
            "met": merged >= target,
            "frames": test[q]["frames"],
            "merged_metrics": {
                k: v
                for k, v in test[q].items()
                if k not in ("accuracy", "chance_accuracy", "frames")
            },
            "val_unmerged_accuracy": r.val_accuracy,
            "val_target": targets[q],
            "shares": q in session.config.queries_touched,
        }
    steps = [{k: v for k, v in s.items() if k != "kind"} for s in journal.steps]
    return {
        **header,
        "memory_before_bytes": before,
        "memory_after_bytes": after,
        "saved_bytes": before - after,
        "max_savings_bytes": bound,
        "saved_fraction_of_bound": (before - after) / bound if bound else 0.0,
        "queries_at_target": sum(v["met"] for v in queries.values()),
        "retrain_s": sum(s["wall_s"] for s in steps),
        "steps_tried": len(steps),
        "steps_accepted": sum(s["status"] != "rejected" for s in steps),
        "queries": queries,
        "merge": session.config.to_json(),
        "steps": steps,
    }

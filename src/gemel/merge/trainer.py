"""Joint retraining: every optimiser step takes gradients from every query being retrained.

Tied layers hold the same ``nn.Parameter`` in several models, so the gradients of every query
that uses a shared tensor accumulate in it. The loss of a step is ``sum(weight_q * loss_q)``
with one minibatch per query; a query far below its target weighs more. Validation runs once
per epoch, more often as a query nears its target; a query that cannot close its gap in the
epochs left is given up; a NaN or exploding loss ends the run. At the end the models hold the
best state seen at a validation (most queries at target, then the smallest summed gap to
target of the others).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

AccuracyFn = Callable[[nn.Module, torch.Tensor, Any], float]
"""``(model, inputs, targets) -> accuracy`` of the model in eval mode on a split."""
LossFn = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]
"""``(model, inputs, targets) -> scalar loss`` of the model in train mode on a minibatch."""


@dataclass
class TrainQuery:
    """One query to retrain: its model, its data, how it is scored and what it must reach."""

    name: str
    model: nn.Module
    train_inputs: torch.Tensor
    train_targets: Any
    val_inputs: torch.Tensor
    val_targets: Any
    loss: LossFn
    accuracy: AccuracyFn
    target: float
    """validation accuracy to reach (the decision margin included)"""


@dataclass(frozen=True)
class TrainerConfig:
    """Knobs of a joint retraining run."""

    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    gap_weight: float = 10.0
    """loss weight of a query = 1 + gap_weight * (target - accuracy), at least 1"""
    explode_factor: float = 50.0
    """a step loss above this multiple of the first step's loss ends the run"""
    give_up_after: float = 2.0
    """epochs of training before a query may be given up"""
    eval_batch_size: int = 256


@dataclass
class QueryOutcome:
    """What retraining did to one query (validation accuracies)."""

    accuracy_tied: float
    """right after tying, before any training"""
    accuracy: float
    """in the state the models are left in"""
    target: float
    samples: int = 0
    gave_up: bool = False

    @property
    def met(self) -> bool:
        return self.accuracy >= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy_tied": self.accuracy_tied,
            "accuracy": self.accuracy,
            "target": self.target,
            "met": self.met,
            "samples": self.samples,
            "gave_up": self.gave_up,
        }


@dataclass
class TrainResult:
    """The outcome of one joint retraining run."""

    queries: dict[str, QueryOutcome]
    steps: int = 0
    epochs: float = 0.0
    stop: str = "epochs"
    """``met`` (all queries at target), ``epochs``, ``gave_up``, ``diverged`` or ``deadline``"""
    wall_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    """``{"epoch": e, "accuracy": {query: acc}}`` at every validation"""

    @property
    def failed(self) -> list[str]:
        return [q for q, o in self.queries.items() if not o.met]

    @property
    def samples(self) -> int:
        return sum(o.samples for o in self.queries.values())


def unique_parameters(models: Sequence[nn.Module]) -> list[nn.Parameter]:
    """Every parameter of ``models`` once, however many models hold it."""
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for m in models:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _take(targets: Any, idx: torch.Tensor) -> Any:
    if isinstance(targets, torch.Tensor):
        return targets[idx]
    return [targets[i] for i in idx.tolist()]


def _cuda_indices(params: Sequence[torch.Tensor]) -> list[int]:
    """The CUDA devices holding ``params`` (none on the CPU)."""
    return sorted({p.device.index for p in params if p.device.type == "cuda"})


def _state_of(models: Sequence[nn.Module]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    tensors: dict[int, torch.Tensor] = {}
    for m in models:
        for t in [*m.parameters(), *m.buffers()]:
            tensors.setdefault(id(t), t)
    return [(t, t.detach().clone()) for t in tensors.values()]


def _restore(state: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for t, saved in state:
            t.copy_(saved)


class JointTrainer:
    """Retrains a set of queries together; see the module docstring for the rules."""

    def __init__(self, config: TrainerConfig | None = None) -> None:
        self.config = config or TrainerConfig()

    def validate(self, queries: Sequence[TrainQuery]) -> dict[str, float]:
        """Validation accuracy of each query in its current state."""
        out = {}
        for q in queries:
            q.model.eval()
            with torch.no_grad():
                out[q.name] = (
                    float(q.accuracy(q.model, q.val_inputs, q.val_targets))
                    if len(q.val_inputs)
                    else 0.0
                )
        return out

    def train(
        self,
        queries: Sequence[TrainQuery],
        *,
        seed: int = 0,
        deadline: float | None = None,
        on_step: Callable[[int], None] | None = None,
        on_validate: Callable[[float, dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Retrain ``queries`` jointly; the models are left in the best validated state.

        ``deadline`` is a ``time.monotonic()`` instant after which training stops;
        ``on_step(step)`` runs after every optimiser step, ``on_validate(epoch, accuracies)``
        after every validation.
        """
        cfg = self.config
        t0 = time.monotonic()
        acc = self.validate(queries)
        outcomes = {q.name: QueryOutcome(acc[q.name], acc[q.name], q.target) for q in queries}
        result = TrainResult(outcomes, history=[{"epoch": 0.0, "accuracy": dict(acc)}])
        if on_validate:
            on_validate(0.0, acc)
        if all(acc[q.name] >= q.target for q in queries):
            result.stop = "met"
            result.wall_s = time.monotonic() - t0
            return result

        models = [q.model for q in queries]
        best_key = self._key(queries, acc)
        best_state = _state_of(models)
        best_acc = dict(acc)
        gen = torch.Generator().manual_seed(seed)
        steps_per_epoch = max(
            1, max(math.ceil(len(q.train_inputs) / cfg.batch_size) for q in queries)
        )
        total_steps = max(1, round(cfg.epochs * steps_per_epoch))
        active = {q.name for q in queries}
        orders = {q.name: torch.zeros(0, dtype=torch.long) for q in queries}
        first_loss: float | None = None
        step = 0
        next_val = self._interval(queries, acc, steps_per_epoch)
        params = unique_parameters(models)
        cuda = _cuda_indices(params)
        with torch.random.fork_rng(devices=cuda):  # the step's seeding stays inside it
            torch.random.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            while step < total_steps:
                if deadline is not None and time.monotonic() >= deadline:
                    result.stop = "deadline"
                    break
                opt.zero_grad(set_to_none=True)
                total = None
                for q in queries:
                    if q.name not in active:
                        q.model.eval()
                        continue
                    q.model.train()
                    idx = self._next_batch(orders, q, gen)
                    device = next(q.model.parameters()).device
                    x = q.train_inputs[idx].to(device)
                    weight = 1.0 + cfg.gap_weight * max(0.0, q.target - acc[q.name])
                    loss = weight * q.loss(q.model, x, _take(q.train_targets, idx))
                    total = loss if total is None else total + loss
                    outcomes[q.name].samples += len(idx)
                if total is None:
                    break
                value = float(total.detach())
                if first_loss is None:
                    first_loss = value
                if not math.isfinite(value) or value > cfg.explode_factor * max(first_loss, 1e-6):
                    result.stop = "diverged"
                    break
                total.backward()
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                if not torch.isfinite(norm):
                    result.stop = "diverged"
                    break
                opt.step()
                step += 1
                if on_step:
                    on_step(step)
                if step >= next_val or step >= total_steps:
                    epoch = step / steps_per_epoch
                    acc = self.validate(queries)
                    result.history.append({"epoch": epoch, "accuracy": dict(acc)})
                    if on_validate:
                        on_validate(epoch, acc)
                    key = self._key(queries, acc)
                    if key > best_key:
                        best_key, best_state, best_acc = key, _state_of(models), dict(acc)
                    if all(acc[q.name] >= q.target for q in queries):
                        result.stop = "met"
                        break
                    for q in queries:
                        if q.name in active and self._hopeless(q, result.history, epoch):
                            active.discard(q.name)
                            outcomes[q.name].gave_up = True
                    if not any(q.name in active and acc[q.name] < q.target for q in queries):
                        result.stop = "gave_up"
                        break
                    next_val = step + self._interval(queries, acc, steps_per_epoch)
        _restore(best_state)
        for m in models:
            m.eval()
        for name, a in best_acc.items():
            outcomes[name].accuracy = a
        result.steps = step
        result.epochs = step / steps_per_epoch
        result.wall_s = time.monotonic() - t0
        return result

    def _next_batch(
        self, orders: dict[str, torch.Tensor], q: TrainQuery, gen: torch.Generator
    ) -> torch.Tensor:
        """The next minibatch of ``q``'s train frames: epochs of shuffled orders, back to back."""
        size = self.config.batch_size
        if len(orders[q.name]) < size:
            perm = torch.randperm(len(q.train_inputs), generator=gen)
            orders[q.name] = torch.cat([orders[q.name], perm])
        idx, orders[q.name] = orders[q.name][:size], orders[q.name][size:]
        return idx

    @staticmethod
    def _key(queries: Sequence[TrainQuery], acc: dict[str, float]) -> tuple[int, float, float]:
        """How good a validated state is: queries at target, then the smallest summed gap to
        target of the others, then the total accuracy."""
        met = sum(acc[q.name] >= q.target for q in queries)
        gap = sum(max(0.0, q.target - acc[q.name]) for q in queries)
        return met, -gap, sum(acc.values())

    def _interval(
        self, queries: Sequence[TrainQuery], acc: dict[str, float], steps_per_epoch: int
    ) -> int:
        """Steps until the next validation: an epoch, down to a quarter near the target."""
        gaps = [q.target - acc[q.name] for q in queries if acc[q.name] < q.target]
        gap = min(gaps) if gaps else 0.0
        fraction = 0.25 if gap <= 0.02 else 0.5 if gap <= 0.05 else 1.0
        return max(1, round(fraction * steps_per_epoch))

    def _hopeless(self, q: TrainQuery, history: list[dict[str, Any]], epoch: float) -> bool:
        """Whether ``q`` cannot reach its target in the epochs left at its best pace so far."""
        cfg = self.config
        if epoch < cfg.give_up_after:
            return False
        accs = [h["accuracy"][q.name] for h in history]
        best = max(accs)
        if best >= q.target:
            return False
        pace = max(0.0, (best - accs[0]) / epoch)
        return best + 2.0 * pace * (cfg.epochs - epoch) < q.target

"""Base (unmerged) models: train each query's model on its train split, record its accuracy.

A query whose model has a ``checkpoint`` is taken as trained and only evaluated (unless
``finetune``: then training starts from that checkpoint). Every other query is trained from
scratch. Each base model lives in its own folder under ``<cache>/models/``, keyed by a hash
of everything that decides its weights (model, task, source, splits, training settings), with:

- ``state.pt``: the training state after the last finished epoch (an interrupted run resumes
  from it; removed once the record is written, as it holds the optimiser's moments too);
- ``model.safetensors``: the weights of the epoch with the best validation accuracy;
- ``record.json``: the :class:`BaseRecord`, written last (its presence means "done").
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gemel.data.dataset import QueryData, load_split, query_task
from gemel.data.sources import cache_dir, file_stamp, source_key
from gemel.data.tasks import Task
from gemel.errors import GemelError
from gemel.io import atomic_path, write_json_atomic
from gemel.models import build_model, check_device
from gemel.workload import ModelSpec, Workload

TRAINER_VERSION = 2  # bump when training changes what it produces

Progress = Callable[[str, int, int], None]  # (query, done, total) batches


@dataclass(frozen=True)
class BaseRecord:
    """A query's base model: where its weights are and how well it does.

    ``unmerged_accuracy`` and ``chance_accuracy`` are on the test split; ``val_accuracy`` and
    ``val_chance_accuracy`` on the validation split. ``trained`` is False when the workload's
    own checkpoint was only evaluated.
    """

    query: str
    checkpoint: Path
    unmerged_accuracy: float
    val_accuracy: float
    chance_accuracy: float
    val_chance_accuracy: float
    epochs: int
    train_seconds: float
    trained: bool

    def model_spec(self, wl: Workload) -> ModelSpec:
        """The query's model spec with this record's checkpoint."""
        return wl.query(self.query).model.model_copy(update={"checkpoint": self.checkpoint})

    def load_model(self, wl: Workload, device: str | torch.device = "cpu") -> nn.Module:
        """The trained base model, in eval mode."""
        where = f"{wl.label}: query {self.query!r}"
        return build_model(self.model_spec(wl), where=where, device=device)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "checkpoint": str(self.checkpoint)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> BaseRecord:
        return BaseRecord(**{**data, "checkpoint": Path(data["checkpoint"])})


def model_dir(wl: Workload, query: str, *, finetune: bool = False) -> Path:
    """The folder of a query's base model (see the module docstring)."""
    q = wl.query(query)
    model = q.model.model_dump(mode="json")
    if q.model.checkpoint is not None:
        ck = Path(q.model.checkpoint)
        model["checkpoint"] = [str(ck.resolve()), file_stamp(ck) if ck.is_file() else None]
    key = {
        "model": model,
        "task": wl.task_of(q).model_dump(mode="json"),
        "source": source_key(wl.source_of(q)),
        "splits": wl.splits.model_dump(mode="json"),
        "train": wl.train_of(q).model_dump(mode="json"),
        "finetune": finetune,
        "version": TRAINER_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{query}-{digest}"


@torch.no_grad()
def model_answers(
    model: nn.Module, task: Task, inputs: torch.Tensor, *, batch_size: int = 256
) -> Any:
    """The task's answers of ``model`` (in eval mode) on ``inputs``, batch by batch (on the
    model's device): a tensor of class indices, or a list with one answer per input."""
    model.eval()
    device = next(model.parameters()).device
    parts = [
        task.answers(model, inputs[i : i + batch_size].to(device))
        for i in range(0, len(inputs), batch_size)
    ]
    if parts and isinstance(parts[0], torch.Tensor):
        return torch.cat([p.cpu() for p in parts])
    return [a for p in parts for a in p]


def split_accuracy(
    model: nn.Module, inputs: torch.Tensor, targets: Any, *, task: Task, batch_size: int = 256
) -> float:
    """The task's accuracy of ``model`` on a split's inputs and targets."""
    return task.accuracy(model_answers(model, task, inputs, batch_size=batch_size), targets)


def split_scores(model: nn.Module, data: QueryData, *, batch_size: int = 256) -> dict[str, float]:
    """``accuracy`` of the model on a query's split, and the task's other figures beside it."""
    try:
        answers = model_answers(model, data.task, data.inputs, batch_size=batch_size)
    except GemelError as e:
        raise GemelError(f"query {data.query!r}: {e}") from None
    return {
        "accuracy": data.task.accuracy(answers, data.targets),
        **data.task.metrics(answers, data.targets),
    }


def evaluate(model: nn.Module, data: QueryData, *, batch_size: int = 256) -> float:
    """The model's accuracy on a query's split."""
    return split_scores(model, data, batch_size=batch_size)["accuracy"]


def _take(targets: Any, idx: torch.Tensor) -> Any:
    if isinstance(targets, torch.Tensor):
        return targets[idx]
    return [targets[i] for i in idx.tolist()]


def augment(
    x: torch.Tensor, spec: ModelSpec, gen: torch.Generator, *, mirror: bool = True
) -> torch.Tensor:
    """Random mirror (unless not ``mirror``), brightness (x0.6-1.25) and colour cast
    (x0.92-1.08 per channel) of a normalised batch, so a base model trained on daylight still
    works at dusk."""
    n = len(x)
    mean = torch.tensor(spec.normalization.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.normalization.std).view(1, 3, 1, 1)
    gain = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.25, generator=gen)
    gain = gain * torch.empty(n, 3, 1, 1).uniform_(0.92, 1.08, generator=gen)
    flip = (torch.rand(n, generator=gen) < 0.5).view(-1, 1, 1, 1) & mirror
    x = torch.where(flip, x.flip(-1), x)
    return ((x * std + mean) * gain - mean) / std


@torch.no_grad()
def recalibrate_norms(
    model: nn.Module, inputs: torch.Tensor, *, frames: int = 512, batch_size: int = 128
) -> None:
    """Re-estimate every batch-norm layer's running statistics as the plain average over
    (up to) ``frames`` evenly spread training inputs.

    Some architectures keep a very slow running average (MobileNetV3: momentum 0.01), which
    after a short training run still holds mostly its initial values and ruins eval mode.
    Only the batch-norm layers are put in train mode (a detector in train mode wants targets).
    ``inputs`` may stay on the host: each batch moves to the model's device.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(model.parameters()).device
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.eval()
    for m in norms:
        m.train()
    pick = torch.linspace(0, len(inputs) - 1, min(frames, len(inputs))).long()
    for i in range(0, len(pick), batch_size):
        model(inputs[pick[i : i + batch_size]].to(device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def _save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def _train(
    wl: Workload,
    query: str,
    folder: Path,
    init: Path | None,
    progress: Progress | None,
    device: torch.device,
) -> tuple[int, float]:
    """Train (or resume training) the query's model on ``device``; returns (epochs, seconds)."""
    q = wl.query(query)
    cfg = wl.train_of(q)
    where = f"{wl.label}: query {query!r}"
    train, val = load_split(wl, query, "train"), load_split(wl, query, "val")
    spec = q.model.model_copy(update={"checkpoint": init})
    seed = zlib.crc32(query.encode())
    torch.manual_seed(seed)
    model = build_model(spec, where=where, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    state_path = folder / "state.pt"
    epoch, seconds, best = 0, 0.0, -1.0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        epoch, seconds, best = state["epoch"], state["seconds"], state["best"]
    while epoch < cfg.epochs:
        start = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(len(train), generator=gen)
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = augment(train.inputs[idx], spec, gen, mirror=train.task.mirrorable).to(device)
            try:
                loss = train.task.training_loss(model, x, _take(train.targets, idx))
            except GemelError as e:
                raise GemelError(f"{where}: {e}") from None
            if not torch.isfinite(loss):
                raise GemelError(f"{where}: training diverged (loss {loss.item()}); lower 'lr'")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(query, epoch * steps_per_epoch + step + 1, total)
        epoch += 1
        recalibrate_norms(model, train.inputs)
        acc = evaluate(model, val)
        if acc > best:
            best = acc
            _save_weights(model, folder / "model.safetensors")
        seconds += time.perf_counter() - start
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "seconds": seconds,
            "best": best,
        }
        with atomic_path(state_path) as tmp:
            torch.save(state, tmp)
    return epoch, seconds


def train_base_model(
    wl: Workload,
    query: str,
    *,
    finetune: bool = False,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> BaseRecord:
    """The query's base record: read if done, else trained (or resumed) and evaluated now,
    on ``device`` (the weights are saved from the CPU either way)."""
    q = wl.query(query)
    query_task(wl, query)  # checks the task against the model before any work
    folder = model_dir(wl, query, finetune=finetune)
    record_path = folder / "record.json"
    if record_path.is_file():
        return BaseRecord.from_json(json.loads(record_path.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    given = Path(q.model.checkpoint) if q.model.checkpoint is not None else None
    if given is not None and not finetune:
        checkpoint, epochs, seconds, trained = given, 0, 0.0, False
    else:
        epochs, seconds = _train(wl, query, folder, given, progress, torch.device(device))
        checkpoint, trained = folder / "model.safetensors", True
    spec = q.model.model_copy(update={"checkpoint": checkpoint})
    model = build_model(spec, where=f"{wl.label}: query {query!r}", device=device)
    val, test = load_split(wl, query, "val"), load_split(wl, query, "test")
    record = BaseRecord(
        query=query,
        checkpoint=checkpoint,
        unmerged_accuracy=evaluate(model, test),
        val_accuracy=evaluate(model, val),
        chance_accuracy=test.chance_accuracy,
        val_chance_accuracy=val.chance_accuracy,
        epochs=epochs,
        train_seconds=round(seconds, 2),
        trained=trained,
    )
    write_json_atomic(record_path, record.to_json())
    (folder / "state.pt").unlink(missing_ok=True)
    return record


def queries_to_train(
    wl: Workload, queries: list[str] | None, device: str | torch.device
) -> list[str]:
    """The names ``base_models`` works through (every query by default), after checking that
    each names a query and that ``device`` is usable: bad input fails before any training."""
    names = queries if queries is not None else wl.query_names
    for name in names:
        wl.query(name)
    check_device(device)
    return names


def base_models(
    wl: Workload,
    *,
    queries: list[str] | None = None,
    finetune: bool = False,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, BaseRecord]:
    """Every query's base record (training what is not trained yet on ``device``), in
    workload order."""
    names = queries_to_train(wl, queries, device)
    return {
        name: train_base_model(wl, name, finetune=finetune, progress=progress, device=device)
        for name in names
    }

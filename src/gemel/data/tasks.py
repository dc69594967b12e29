"""Tasks: what a query answers about a frame, with its targets, loss, prediction and score.

One registry turns a :class:`~gemel.workload.TaskSpec` into a :class:`Task`; nothing else in
gemel branches on task kinds. Classification-type tasks (presence, dominant class, count
buckets) answer one class index per frame; their per-frame score is 1.0 when the answer is
right and 0.0 otherwise. The interface is general enough for detection (targets and
predictions need not be tensors of class indices; the per-frame score is a float).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.workload import ModelSpec, TaskSpec

NONE = "none"


class Task(ABC):
    """What one query computes from its model's outputs."""

    kind: ClassVar[str]
    mirrorable: ClassVar[bool] = True
    """whether a mirrored frame has the same targets (training may flip frames)"""

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    @property
    @abstractmethod
    def num_outputs(self) -> int:
        """How many outputs (``num_classes``) the query's model must have."""

    @abstractmethod
    def targets(self, truths: Sequence[FrameTruth]) -> Any:
        """The training/scoring targets of a sequence of frames."""

    def for_frames(self, frame_size: tuple[int, int], input_size: tuple[int, int] | None) -> Task:
        """This task for frames of ``frame_size`` (h, w) that the model sees at ``input_size``
        (unchanged when None); tasks whose targets are in pixels rescale them."""
        return self

    def training_loss(self, model: nn.Module, inputs: torch.Tensor, targets: Any) -> torch.Tensor:
        """The loss of ``model`` (in train mode) on a batch: ``loss(model(inputs), targets)``."""
        return self.loss(model(inputs), targets)

    def answers(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        """The answers of ``model`` (in eval mode) on a batch: ``predict(model(inputs))``."""
        return self.predict(model(inputs))

    @abstractmethod
    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        """A scalar training loss of model outputs against targets (mean over the batch)."""

    @abstractmethod
    def predict(self, outputs: Any) -> Any:
        """The answers (one per frame) from model outputs."""

    @abstractmethod
    def score(self, predictions: Any, targets: Any) -> torch.Tensor:
        """Per-frame score in [0, 1] (float tensor ``[N]``) of answers against targets."""

    @abstractmethod
    def chance_accuracy(self, targets: Any) -> float:
        """What the best constant answer scores on these targets."""

    def accuracy(self, predictions: Any, targets: Any) -> float:
        """Mean per-frame score."""
        s = self.score(predictions, targets)
        return float(s.mean()) if len(s) else 0.0

    def metrics(self, predictions: Any, targets: Any) -> dict[str, float]:
        """Figures reported beside the accuracy of a split (none by default)."""
        return {}

    def check_model(self, spec: ModelSpec, where: str) -> None:
        """Raise a GemelError if the model cannot have this task's number of outputs."""
        n = self.num_outputs
        if spec.num_classes is not None and spec.num_classes != n:
            raise GemelError(
                f"{where}: field 'model.num_classes': a {self.describe()} task needs "
                f"num_classes: {n}, not {spec.num_classes}"
            )
        if spec.num_classes is None and spec.arch is not None:
            raise GemelError(
                f"{where}: field 'model.num_classes': a {self.describe()} task needs "
                f"num_classes: {n}"
            )

    def describe(self) -> str:
        return f"{self.kind}({', '.join(self.spec.classes)})"


class ClassificationTask(Task):
    """One class index per frame; ``labels`` names the classes in output order."""

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]:
        """Names of the answers, index by index."""

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    @abstractmethod
    def target(self, truth: FrameTruth) -> int:
        """The class index of one frame."""

    def targets(self, truths: Sequence[FrameTruth]) -> torch.Tensor:
        return torch.tensor([self.target(t) for t in truths], dtype=torch.long)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy; ``targets`` (kept on the host with the split) move to the outputs'
        device."""
        self._check_outputs(outputs)
        return F.cross_entropy(outputs, targets.to(outputs.device))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        self._check_outputs(outputs)
        return outputs.argmax(dim=1)

    def _check_outputs(self, outputs: Any) -> None:
        if not isinstance(outputs, torch.Tensor):
            raise GemelError(
                f"the model gives {type(outputs).__name__} outputs, its {self.describe()} task "
                f"needs a tensor [N, {self.num_outputs}]"
            )
        if outputs.ndim != 2 or outputs.shape[1] != self.num_outputs:
            raise GemelError(
                f"the model gives outputs of shape {list(outputs.shape)}, "
                f"its task needs [N, {self.num_outputs}]"
            )

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (predictions.to(targets.device) == targets).float()

    def chance_accuracy(self, targets: torch.Tensor) -> float:
        if len(targets) == 0:
            return 0.0
        counts = torch.bincount(targets, minlength=self.num_outputs)
        return float(counts.max()) / len(targets)

    def _selected(self, t: FrameTruth) -> tuple[tuple[str, ...], np.ndarray]:
        keep = t.selected(self.spec.classes, self.spec.min_area)
        return tuple(c for c, k in zip(t.classes, keep, strict=True) if k), t.areas()[keep]


class PresenceTask(ClassificationTask):
    """Is any object of the classes in the frame? Answers 0 (no) or 1 (yes)."""

    kind = "presence"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("absent", "present")

    def target(self, truth: FrameTruth) -> int:
        if truth.label is not None:
            return int(truth.label in self.spec.classes)
        if truth.count is not None:
            return int(truth.count > 0)
        return int(len(self._selected(truth)[0]) > 0)


class DominantTask(ClassificationTask):
    """Which of the classes has the most objects in the frame ('none' at index 0 if none).

    A tie goes to the class whose objects cover more pixels.
    """

    kind = "dominant"

    @property
    def labels(self) -> tuple[str, ...]:
        return (NONE, *self.spec.classes)

    def target(self, truth: FrameTruth) -> int:
        if truth.label is not None:
            return self.labels.index(truth.label) if truth.label in self.spec.classes else 0
        if truth.count is not None:
            raise GemelError(f"a {self.describe()} task needs boxes or classes, not counts")
        classes, areas = self._selected(truth)
        if not classes:
            return 0
        best = max(
            self.spec.classes,
            key=lambda c: (
                sum(x == c for x in classes),
                float(sum(a for x, a in zip(classes, areas, strict=True) if x == c)),
            ),
        )
        return self.labels.index(best)


class CountTask(ClassificationTask):
    """How many objects of the classes, as a bucket: the last lower edge <= the count."""

    kind = "count"

    @property
    def labels(self) -> tuple[str, ...]:
        b = self.spec.buckets or (0,)
        names = [str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(b)]
        return (*names, f"{b[-1]}+")

    def bucket(self, count: int) -> int:
        b = self.spec.buckets or (0,)
        return int(np.searchsorted(np.asarray(b), count, side="right") - 1)

    def target(self, truth: FrameTruth) -> int:
        if truth.label is not None:
            raise GemelError(f"a {self.describe()} task needs boxes or counts, not classes")
        if truth.count is not None:
            return self.bucket(truth.count)
        return self.bucket(len(self._selected(truth)[0]))


TASKS: dict[str, Callable[[TaskSpec], Task]] = {
    t.kind: t for t in (PresenceTask, DominantTask, CountTask)
}


def register_task(kind: str, factory: Callable[[TaskSpec], Task]) -> None:
    """Make ``make_task`` build ``factory(spec)`` for tasks of ``kind``."""
    TASKS[kind] = factory


def make_task(spec: TaskSpec) -> Task:
    """The task of a query's ``task`` spec."""
    factory = TASKS.get(spec.kind)
    if factory is None:
        raise GemelError(
            f"task kind {spec.kind!r} is not available (have: {', '.join(sorted(TASKS))})"
        )
    return factory(spec)

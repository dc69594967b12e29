"""The detection task: the boxes of the task's classes in each frame.

Targets are one :class:`~gemel.data.detection_metrics.Detections` per frame (boxes in the
pixels of the model's input, label ``i + 1`` for ``classes[i]``: 0 is the background, so a
detector needs ``num_classes = len(classes) + 1``). torchvision detectors compute their training
loss themselves (``model(images, targets)`` in train mode) and return per-image detections in
eval mode, which is what :meth:`DetectionTask.training_loss` and the default
:meth:`~gemel.data.tasks.Task.answers` rely on.

Split accuracy is mAP at IoU 0.5 (``map_50``; mAP over IoU 0.5:0.95 is reported beside it as
``map``); the per-frame score for stream accuracy is
:func:`~gemel.data.detection_metrics.frame_f1`. Answering "no objects" scores an mAP of 0,
which is the chance accuracy.

gemel's :func:`~gemel.data.preprocess.preprocess` already resizes and normalises frames, so a
torchvision detector must not normalise again: its ``kwargs`` need ``image_mean: [0, 0, 0]``
and ``image_std: [1, 1, 1]`` (checked). Its own resize (``min_size``/``max_size``, or an SSD's
fixed size) may scale the input further; detections come back in input pixels either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

from gemel.data.detection_metrics import Detections, frame_f1, mean_average_precision
from gemel.data.tasks import Task, register_task
from gemel.data.truth import FrameTruth
from gemel.errors import GemelError
from gemel.workload import ModelSpec, TaskSpec

IDENTITY_MEAN = [0.0, 0.0, 0.0]
IDENTITY_STD = [1.0, 1.0, 1.0]


@cache
def torchvision_detectors() -> frozenset[str]:
    """torchvision's detection builder names."""
    import torchvision.models
    import torchvision.models.detection

    return frozenset(torchvision.models.list_models(module=torchvision.models.detection))


class DetectionTask(Task):
    """Boxes and classes of every object of ``classes`` (at least ``min_area`` px^2 large)."""

    kind = "detection"
    mirrorable = False  # a mirrored frame has mirrored boxes

    def __init__(self, spec: TaskSpec, scale: tuple[float, float] = (1.0, 1.0)):
        super().__init__(spec)
        self.scale = scale
        """(x, y) factors from source pixels to model-input pixels"""

    @property
    def num_outputs(self) -> int:
        return len(self.spec.classes) + 1

    def for_frames(
        self, frame_size: tuple[int, int], input_size: tuple[int, int] | None
    ) -> DetectionTask:
        if input_size is None:
            return DetectionTask(self.spec)
        (fh, fw), (ih, iw) = frame_size, input_size
        return DetectionTask(self.spec, (iw / fw, ih / fh))

    def target(self, truth: FrameTruth) -> Detections:
        """One frame's ground truth, in model-input pixels."""
        if not truth.has_boxes:
            raise GemelError(f"a {self.describe()} task needs boxes, not frame labels or counts")
        keep = truth.selected(self.spec.classes, self.spec.min_area)
        sx, sy = self.scale
        boxes = torch.from_numpy(np.asarray(truth.boxes[keep], np.float32)) * torch.tensor(
            [sx, sy, sx, sy]
        )
        index = {c: i + 1 for i, c in enumerate(self.spec.classes)}
        labels = torch.tensor(
            [index[c] for c, k in zip(truth.classes, keep, strict=True) if k], dtype=torch.long
        )
        return Detections(boxes.reshape(-1, 4), labels, torch.ones(len(labels)))

    def targets(self, truths: Sequence[FrameTruth]) -> list[Detections]:
        return [self.target(t) for t in truths]

    def training_loss(
        self, model: nn.Module, inputs: torch.Tensor, targets: Sequence[Detections]
    ) -> torch.Tensor:
        """The sum of the detector's own losses (``model(images, targets)`` in train mode)."""
        device = inputs.device
        losses = model(
            list(inputs),
            [{"boxes": t.boxes.to(device), "labels": t.labels.to(device)} for t in targets],
        )
        if not isinstance(losses, dict):
            raise GemelError(
                f"the model returns {type(losses).__name__} in train mode, a {self.describe()} "
                "task needs a torchvision-style detector (a dict of losses)"
            )
        return sum(losses.values(), torch.zeros((), device=device))

    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        raise GemelError(
            f"a {self.describe()} task's loss comes from the detector itself: "
            "use training_loss(model, inputs, targets)"
        )

    def predict(self, outputs: Any) -> list[Detections]:
        """Per-image detections (torchvision's eval-mode ``[{"boxes", "labels", "scores"}]``)."""
        if not isinstance(outputs, list | tuple) or not all(
            isinstance(o, dict) and {"boxes", "labels", "scores"} <= set(o) for o in outputs
        ):
            raise GemelError(
                f"the model gives {type(outputs).__name__} outputs, a {self.describe()} task "
                "needs per-image detections (dicts of boxes, labels and scores)"
            )
        return [
            Detections(
                o["boxes"].detach().float().cpu(),
                o["labels"].detach().long().cpu(),
                o["scores"].detach().float().cpu(),
            )
            for o in outputs
        ]

    def score(
        self, predictions: Sequence[Detections], targets: Sequence[Detections]
    ) -> torch.Tensor:
        return torch.tensor(
            [frame_f1(p, t) for p, t in zip(predictions, targets, strict=True)],
            dtype=torch.float32,
        )

    def accuracy(self, predictions: Sequence[Detections], targets: Sequence[Detections]) -> float:
        """mAP at IoU 0.5."""
        return self.metrics(predictions, targets)["map_50"]

    def metrics(
        self, predictions: Sequence[Detections], targets: Sequence[Detections]
    ) -> dict[str, float]:
        """``map_50`` (IoU 0.5) and ``map`` (IoU 0.5:0.95)."""
        if len(predictions) == 0:
            return {"map_50": 0.0, "map": 0.0}
        return mean_average_precision(list(predictions), list(targets))

    def chance_accuracy(self, targets: Sequence[Detections]) -> float:
        """Answering "no objects" finds nothing: mAP 0."""
        return 0.0

    def check_model(self, spec: ModelSpec, where: str) -> None:
        super().check_model(spec, where)
        if spec.arch not in torchvision_detectors():
            return
        for key, identity in (("image_mean", IDENTITY_MEAN), ("image_std", IDENTITY_STD)):
            given = spec.kwargs.get(key)
            if given is None or [float(v) for v in given] != identity:
                raise GemelError(
                    f"{where}: field 'model.kwargs.{key}': a {self.describe()} task needs "
                    f"{key}: {[int(v) for v in identity]} (gemel normalises frames itself, "
                    "with 'model.normalization')"
                )


register_task(DetectionTask.kind, DetectionTask)

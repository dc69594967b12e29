"""Detection accuracy: mAP over a split, and a per-frame score for stream accuracy.

mAP (at IoU 0.5, and averaged over IoU 0.5:0.95) comes from torchmetrics' COCO-style
``MeanAveragePrecision`` (101-point interpolated precision, as pycocotools computes it).

Stream accuracy scores every frame on its own, so it needs a per-frame number: the F1 score of
the frame's detections at IoU 0.5 (greedy matching by descending confidence, same class only,
detections below ``score_threshold`` ignored). A frame with no objects and no detections scores
1; missing every object, or reporting objects that are not there, scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou


@dataclass(frozen=True)
class Detections:
    """One frame's boxes (``[N, 4]`` xyxy pixels), class labels (``[N]``) and scores (``[N]``).

    Ground truth uses the same type with ``scores`` all ones.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor

    @staticmethod
    def empty() -> Detections:
        return Detections(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep])


def mean_average_precision(
    predictions: Sequence[Detections], truths: Sequence[Detections]
) -> dict[str, float]:
    """``{"map_50": ..., "map": ...}`` over paired frames (``map`` averages IoU 0.5:0.95)."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy")
    metric.update(
        [
            {"boxes": p.boxes.float(), "scores": p.scores.float(), "labels": p.labels.long()}
            for p in predictions
        ],
        [{"boxes": t.boxes.float(), "labels": t.labels.long()} for t in truths],
    )
    result = metric.compute()
    # torchmetrics reports -1 when no ground truth exists at all; nothing to find is no error
    return {k: max(float(result[k]), 0.0) for k in ("map_50", "map")}


def frame_f1(
    prediction: Detections, truth: Detections, *, iou: float = 0.5, score_threshold: float = 0.5
) -> float:
    """F1 of one frame's detections against its ground truth (see module docstring)."""
    pred = prediction.above(score_threshold)
    n_pred, n_true = len(pred.labels), len(truth.labels)
    if n_pred == 0 and n_true == 0:
        return 1.0
    if n_pred == 0 or n_true == 0:
        return 0.0
    ious = box_iou(pred.boxes.float(), truth.boxes.float())
    ious[pred.labels[:, None] != truth.labels[None, :]] = 0.0
    matched = torch.zeros(n_true, dtype=torch.bool)
    tp = 0
    for i in torch.argsort(pred.scores, descending=True).tolist():
        row = ious[i].clone()
        row[matched] = 0.0
        j = int(torch.argmax(row))
        if row[j] >= iou:
            matched[j] = True
            tp += 1
    return 2 * tp / (n_pred + n_true)

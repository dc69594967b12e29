"""Label a video with a golden model: a large, accurate model whose answers become ground truth.

The golden model is any torchvision detector or classifier builder (with the user's
checkpoint) or a user factory. A detector (its output is a list of dicts with ``boxes``,
``labels``, ``scores``) gives box lines; a classifier gives one class per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gemel.data.labels import write_labels
from gemel.data.preprocess import preprocess
from gemel.data.truth import FrameTruth
from gemel.data.video import iter_video, video_rate
from gemel.errors import GemelError
from gemel.models import build_model, check_device
from gemel.workload import ModelSpec


@dataclass(frozen=True)
class LabelSummary:
    """What ``label_video`` wrote."""

    out: Path
    frames: int
    skipped: int
    kind: str  # "boxes" or "class"
    objects: int


def default_categories(spec: ModelSpec) -> list[str] | None:
    """The class names torchvision ships with a builder's weights (no download), if they fit
    the model's number of outputs."""
    if spec.arch is None:
        return None
    import torchvision.models

    try:
        weights = torchvision.models.get_model_weights(spec.arch)
    except (ValueError, KeyError):
        return None
    members = list(weights)
    names = list(members[0].meta.get("categories") or []) if members else []
    if not names or (spec.num_classes is not None and spec.num_classes != len(names)):
        return None  # retrained with other classes: name outputs by index
    return names


def _name(categories: Sequence[str] | None, index: int) -> str:
    if categories is None:
        return str(index)
    if not 0 <= index < len(categories):
        raise GemelError(
            f"the golden model answered class {index}, but the categories name classes "
            f"0 to {len(categories) - 1} only"
        )
    return categories[index]


def _truths(
    out: object, categories: Sequence[str] | None, threshold: float, detects: bool
) -> list[FrameTruth]:
    if not detects and isinstance(out, torch.Tensor) and out.ndim == 2:
        return [FrameTruth(label=_name(categories, int(i))) for i in out.argmax(1)]
    if detects and isinstance(out, list) and all(isinstance(d, dict) for d in out):
        truths = []
        for d in out:
            keep = d["scores"] >= threshold
            boxes = d["boxes"][keep].float().cpu().numpy().reshape(-1, 4)
            names = tuple(_name(categories, int(i)) for i in d["labels"][keep])
            truths.append(FrameTruth(boxes, names))
        return truths
    raise GemelError(
        "the golden model must return class scores [N, C] (classifier) or a list of dicts "
        "with boxes, labels and scores (detector)"
    )


def is_detector(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a torchvision-style detector (it resizes and normalises itself)."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return isinstance(getattr(model, "transform", None), GeneralizedRCNNTransform)


def label_video(
    video: str | Path,
    out: str | Path,
    *,
    model: ModelSpec,
    categories: Sequence[str] | None = None,
    fps: float | None = None,
    resolution: tuple[int, int] | None = None,
    score_threshold: float = 0.5,
    detector: bool | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> LabelSummary:
    """Write the label file of ``video`` (sampled at ``fps``) from the golden model's answers.

    Boxes are in pixels of the sampled frame (``resolution`` if given, else the file's). A
    detector (``detector=None``: recognised by its torchvision transform) gets each frame as a
    [0, 1] tensor at its sampled size; a classifier gets frames through :func:`preprocess`
    with the model spec's input size and normalisation. ``categories`` names the model's
    outputs (default: the names torchvision ships with the builder, else the indices).
    """
    if fps is not None and not fps > 0:
        raise GemelError(f"fps (the sampling rate) must be positive, not {fps}")
    if not 0 <= score_threshold <= 1:
        raise GemelError(f"score threshold must be in [0, 1], not {score_threshold}")
    check_device(device)
    golden = build_model(model, where="golden model", device=device).eval()
    detects = is_detector(golden) if detector is None else detector
    names = list(categories) if categories is not None else default_categories(model)
    rate = fps if fps is not None else video_rate(video)
    truths: dict[int, FrameTruth] = {}
    counter = [0]
    kind = "boxes" if detects else "class"
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        imgs = np.stack([img for _, img in batch])
        with torch.no_grad():
            if detects:
                x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255.0).to(device)
                out = golden(list(x))
            else:
                out = golden(preprocess(imgs, model).to(device))
        got = _truths(out, names, score_threshold, detects)
        for (slot, _), t in zip(batch, got, strict=True):
            truths[slot] = t
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for slot, img in iter_video(video, fps=rate, resolution=resolution, counter=counter):
        batch.append((slot, img))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not truths:
        raise GemelError(f"{video}: no decodable frames")
    write_labels(out, truths, rate)
    objects = sum(len(t.classes) for t in truths.values())
    return LabelSummary(Path(out), len(truths), counter[0], kind, objects)

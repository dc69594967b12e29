"""A query's data per split, and a source's test segment as a stream of frames.

Splits are contiguous segments in time: the first ``splits.train`` of a source's frames train,
the next ``splits.val`` validate, the rest test, so near-identical neighbouring frames never
sit on both sides of a split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gemel.choices import SPLITS as SPLITS  # re-exported; defined where the CLI reads it
from gemel.data.preprocess import preprocess
from gemel.data.sources import load_clip
from gemel.data.tasks import Task, make_task
from gemel.data.truth import Clip, FrameTruth
from gemel.errors import GemelError
from gemel.workload import Splits, Workload


def split_range(n: int, splits: Splits, split: str) -> range:
    """The frame indices of ``split`` in a clip of ``n`` frames."""
    n_train = round(n * splits.train)
    n_val = round(n * splits.val)
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }
    if split not in bounds:
        raise GemelError(f"unknown split {split!r} (use train, val or test)")
    return range(*bounds[split])


@dataclass(frozen=True)
class QueryData:
    """One query's frames of one split, ready for its model.

    ``inputs``: ``[N, 3, h, w]`` float (after :func:`preprocess`); ``targets``: the task's
    targets; ``frames``: indices into the source clip; ``times``: seconds since the clip start.
    """

    query: str
    split: str
    task: Task
    inputs: torch.Tensor
    targets: Any
    frames: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def chance_accuracy(self) -> float:
        """What always giving this split's most frequent answer scores."""
        return self.task.chance_accuracy(self.targets)


def _where(wl: Workload, query: str) -> str:
    return f"{wl.label}: query {query!r}"


def query_task(wl: Workload, query: str) -> Task:
    """The query's task, checked against its model's number of outputs."""
    q = wl.query(query)
    task = make_task(wl.task_of(q))
    task.check_model(q.model, _where(wl, query))
    return task


def query_clip(wl: Workload, query: str) -> Clip:
    """The whole clip of the query's source."""
    q = wl.query(query)
    return load_clip(wl.source_of(q), where=f"{wl.label}: source {q.source!r}")


def load_split(wl: Workload, query: str, split: str) -> QueryData:
    """One query's inputs and targets on ``split`` (``train``, ``val`` or ``test``)."""
    q = wl.query(query)
    task = query_task(wl, query)
    clip = query_clip(wl, query)
    idx = split_range(len(clip), wl.splits, split)
    if len(idx) == 0:
        raise GemelError(f"{_where(wl, query)}: the {split} split of source {q.source!r} is empty")
    truths = clip.truths[idx.start : idx.stop]
    task = task.for_frames(clip.frames.shape[1:3], q.model.input_size)
    try:
        targets = task.targets(truths)
    except GemelError as e:
        raise GemelError(f"{_where(wl, query)}: {e}") from None
    inputs = preprocess(np.ascontiguousarray(clip.frames[idx.start : idx.stop]), q.model)
    frames = np.arange(idx.start, idx.stop)
    return QueryData(query, split, task, inputs, targets, frames, clip.slots[frames] / clip.fps)


@dataclass(frozen=True)
class StreamFrame:
    """One frame of a stream: clip index, arrival time (s since the segment start), image
    (``[H, W, 3]`` uint8 RGB) and ground truth."""

    index: int
    time: float
    image: np.ndarray
    truth: FrameTruth


def stream_frames(wl: Workload, source: str, split: str = "test") -> Iterator[StreamFrame]:
    """The frames of a source's ``split`` segment in time order, as a camera would deliver them."""
    if source not in wl.sources:
        raise GemelError(f"{wl.label}: no source named {source!r}")
    clip = load_clip(wl.sources[source], where=f"{wl.label}: source {source!r}")
    idx = split_range(len(clip), wl.splits, split)
    if len(idx) == 0:
        return
    t0 = clip.slots[idx.start] / clip.fps
    for i in idx:
        yield StreamFrame(i, float(clip.slots[i] / clip.fps - t0), clip.frames[i], clip.truths[i])

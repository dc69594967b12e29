"""A query's test-segment stream as the edge sees it: frames at the query's fps, the task that
turns model outputs into answers, and the ground truth that scores them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gemel.data import preprocess, query_task, stream_frames
from gemel.data.tasks import Task
from gemel.errors import GemelError
from gemel.workload import ModelSpec, Workload


def task_answers(task: Task, model: torch.nn.Module, inputs: torch.Tensor) -> list[Any]:
    """``task``'s answers of ``model`` (in eval mode) on a batch, one per input (class indices
    become plain ints): how the runtime, the simulator and the profiler answer a batch."""
    answers = task.answers(model, inputs)
    return answers.tolist() if isinstance(answers, torch.Tensor) else list(answers)


@dataclass
class QueryFeed:
    """Frame ``k`` of the stream arrives at ``k / fps`` s; ``images[k]`` is its uint8
    ``[H, W, 3]`` picture (anything else is a bad frame) and ``targets`` its task targets."""

    query: str
    fps: float
    sla_s: float
    images: Sequence[Any]
    targets: Any
    task: Task
    model: ModelSpec

    @property
    def frames_total(self) -> int:
        return len(self.images)

    def score(self, predictions: list[Any], frames: list[int]) -> Sequence[float]:
        """Per-frame scores of ``predictions`` against the truth of ``frames``."""
        if isinstance(self.targets, torch.Tensor):
            targets = self.targets[torch.as_tensor(frames, dtype=torch.long)]
            preds: Any = torch.as_tensor(predictions)
        else:
            targets = [self.targets[j] for j in frames]
            preds = predictions
        return self.task.score(preds, targets).tolist()

    def answers(self, model: torch.nn.Module, inputs: torch.Tensor) -> list[Any]:
        """The task's answers of ``model`` (in eval mode) on a batch, one per input."""
        return task_answers(self.task, model, inputs)

    def batch(self, frames: list[int]) -> tuple[torch.Tensor | None, list[int]]:
        """The model input of ``frames``; unreadable or ill-shaped frames are left out."""
        good: list[np.ndarray] = []
        kept: list[int] = []
        for i in frames:
            try:
                img = self.images[i]
            except Exception:  # a frame that cannot be read is skipped, never fatal
                continue
            if (
                not isinstance(img, np.ndarray)
                or img.dtype != np.uint8
                or img.ndim != 3
                or img.shape[2] != 3
                or (good and img.shape != good[0].shape)
            ):
                continue
            good.append(img)
            kept.append(i)
        if not good:
            return None, []
        return preprocess(np.stack(good), self.model), kept


def query_feed(wl: Workload, query: str, duration_s: float | None = None) -> QueryFeed:
    """The test segment of ``query``'s source sampled at the query's fps (the latest source
    frame at or before each tick), cut to ``duration_s`` seconds."""
    q = wl.query(query)
    if q.source is None:
        raise GemelError(f"{wl.label}: query {query!r}: field 'source' is required to run it")
    task = query_task(wl, query)
    frames = list(stream_frames(wl, q.source, "test"))
    if not frames:
        raise GemelError(f"{wl.label}: source {q.source!r} has an empty test segment")
    fps = wl.fps_of(q)
    times = np.array([f.time for f in frames])
    n = math.floor(times[-1] * fps + 1e-9) + 1
    if duration_s is not None:
        n = min(n, max(1, math.ceil(duration_s * fps - 1e-9)))
    ticks = np.arange(n) / fps
    picks = np.searchsorted(times, ticks + 1e-9, side="right") - 1
    chosen = [frames[max(0, int(i))] for i in picks]
    task = task.for_frames(chosen[0].image.shape[:2], q.model.input_size)
    return QueryFeed(
        query=query,
        fps=fps,
        sla_s=wl.sla_ms_of(q) / 1000.0,
        images=[f.image for f in chosen],
        targets=task.targets([f.truth for f in chosen]),
        task=task,
        model=q.model,
    )


def workload_feeds(
    wl: Workload, queries: Sequence[str], duration_s: float | None = None
) -> dict[str, QueryFeed]:
    """:func:`query_feed` of each query."""
    return {q: query_feed(wl, q, duration_s) for q in queries}


def frame_sizes(feeds: Mapping[str, QueryFeed]) -> dict[str, tuple[int, int]]:
    """Height and width of each feed's frames (its first readable one), for the profiler."""
    sizes = {}
    for q, f in feeds.items():
        first = next((img for img in f.images if img is not None), None)
        if first is not None:
            sizes[q] = (int(first.shape[0]), int(first.shape[1]))
    return sizes

"""Stream accuracy: the one definition used by the runtime, the simulator and the report.

Only the test segment is played; frame ``j`` arrives at ``j / fps``. Frame ``j`` is answered by
the result of the latest frame ``i <= j`` whose processing finished by ``arrival(j) + sla``; a
frame before any such result counts as wrong. ``frames_processed`` counts frames whose own
result finished within the SLA. Each answer is scored against frame ``j``'s ground truth.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

EPS = 1e-9
"""Tolerance on deadlines, so that float rounding of ``j / fps + sla`` never decides."""


@dataclass(frozen=True)
class FrameResult:
    """The answer computed for one frame and when it was ready (seconds since stream start)."""

    frame: int
    finish_s: float
    prediction: Any


@dataclass(frozen=True)
class StreamScore:
    """One query's stream: frames played, frames answered within the SLA, stream accuracy."""

    frames_total: int
    frames_processed: int
    accuracy: float

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_total": self.frames_total,
            "frames_processed": self.frames_processed,
            "accuracy": self.accuracy,
        }


def answer_sources(
    frames_total: int, fps: float, sla_s: float, results: Iterable[FrameResult]
) -> list[FrameResult | None]:
    """For each frame, the result that answers it under the rule above (``None``: no answer)."""
    by_frame = sorted((r for r in results if 0 <= r.frame < frames_total), key=lambda r: r.frame)
    answers: list[FrameResult | None] = []
    pending: list[tuple[float, int, FrameResult]] = []  # (finish, order, result) min-heap
    best: FrameResult | None = None
    k = 0
    for j in range(frames_total):
        while k < len(by_frame) and by_frame[k].frame <= j:
            heapq.heappush(pending, (by_frame[k].finish_s, k, by_frame[k]))
            k += 1
        deadline = j / fps + sla_s + EPS
        while pending and pending[0][0] <= deadline:
            r = heapq.heappop(pending)[2]
            if best is None or r.frame > best.frame:
                best = r
        answers.append(best)
    return answers


def stream_accuracy(
    frames_total: int,
    fps: float,
    sla_s: float,
    results: Sequence[FrameResult],
    score: Callable[[list[Any], list[int]], Sequence[float]],
) -> StreamScore:
    """Score one stream. ``score(predictions, frames)`` rates each prediction against the
    ground truth of the frame at the same position (one call for the whole stream)."""
    answers = answer_sources(frames_total, fps, sla_s, results)
    frames = [j for j, a in enumerate(answers) if a is not None]
    preds = [answers[j].prediction for j in frames]  # type: ignore[union-attr]
    total = float(sum(score(preds, frames))) if frames else 0.0
    processed = {
        r.frame
        for r in results
        if 0 <= r.frame < frames_total and r.finish_s <= r.frame / fps + sla_s + EPS
    }
    return StreamScore(
        frames_total=frames_total,
        frames_processed=len(processed),
        accuracy=total / frames_total if frames_total else 0.0,
    )

"""Stream accuracy on hand-made timelines (DESIGN.md §5)."""

from __future__ import annotations

import pytest

from gemel.edge.accuracy import FrameResult, answer_sources, stream_accuracy

TRUTH = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]


def score(preds: list[int], frames: list[int]) -> list[float]:
    return [float(p == TRUTH[j]) for p, j in zip(preds, frames, strict=True)]


def test_no_results_means_every_frame_wrong() -> None:
    s = stream_accuracy(10, fps=10, sla_s=0.2, results=[], score=score)
    assert (s.frames_total, s.frames_processed, s.accuracy) == (10, 0, 0.0)


def test_every_frame_on_time_and_right_scores_one() -> None:
    results = [FrameResult(j, j / 10 + 0.05, TRUTH[j]) for j in range(10)]
    s = stream_accuracy(10, fps=10, sla_s=0.2, results=results, score=score)
    assert (s.frames_processed, s.accuracy) == (10, 1.0)


def test_a_result_answers_later_frames_until_a_newer_one_is_ready() -> None:
    # frame 0 finishes at 0.05 and answers frames 0..4; frame 5 (ready 0.55) answers 5..9
    results = [FrameResult(0, 0.05, 0), FrameResult(5, 0.55, 0)]
    answers = answer_sources(10, fps=10, sla_s=0.2, results=results)
    assert [a.frame for a in answers] == [0] * 5 + [5] * 5
    s = stream_accuracy(10, fps=10, sla_s=0.2, results=results, score=score)
    assert s.frames_processed == 2
    # predicting 0 everywhere is right on frames 0, 3, 5, 6
    assert s.accuracy == pytest.approx(4 / 10)


def test_no_look_ahead_and_late_results_are_not_processed() -> None:
    # frame 3's result is ready at 0.9: too late for frame 3 (deadline 0.5), so frames
    # 3..6 (deadlines up to 0.8) keep frame 0's answer; frame 7 (deadline 0.9) takes it
    results = [FrameResult(0, 0.01, 1), FrameResult(3, 0.9, 0)]
    answers = answer_sources(10, fps=10, sla_s=0.2, results=results)
    assert [a.frame for a in answers] == [0] * 7 + [3] * 3
    s = stream_accuracy(10, fps=10, sla_s=0.2, results=results, score=score)
    assert s.frames_processed == 1


def test_frames_before_the_first_result_are_wrong() -> None:
    results = [FrameResult(4, 0.45, 1)]
    answers = answer_sources(10, fps=10, sla_s=0.2, results=results)
    assert answers[:4] == [None] * 4
    # frames 4..9 answered with 1: right on 4, 7, 8, 9
    s = stream_accuracy(10, fps=10, sla_s=0.2, results=results, score=score)
    assert s.accuracy == pytest.approx(4 / 10)

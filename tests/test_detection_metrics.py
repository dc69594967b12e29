"""Detection metrics against values worked out by hand."""

import pytest
import torch

from gemel.data.detection_metrics import Detections, frame_f1, mean_average_precision


def det(boxes, labels, scores=None):
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    s = torch.ones(len(labels)) if scores is None else torch.tensor(scores)
    return Detections(b, torch.tensor(labels, dtype=torch.long), s)


# Frame 1: two objects; A (0.9) hits the first exactly, B (0.8) is a false positive.
# Frame 2: one object; C (0.7) covers 72 of its 100 px^2: IoU 0.72.
TRUTH = [det([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1]), det([[0, 0, 10, 10]], [1])]
PRED = [
    det([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [0.9, 0.8]),
    det([[0, 0, 10, 7.2]], [1], [0.7]),
]


def test_map_matches_hand_computation():
    # Ranked A (TP), B (FP), C (TP at IoU <= 0.7): recall 1/3, 1/3, 2/3; interpolated precision
    # is 1 up to recall 1/3 (101-point thresholds 0.00..0.33: 34 points) and 2/3 up to recall 2/3
    # (0.34..0.66: 33 points): AP50 = (34 + 33 * 2/3) / 101 = 56/101.
    # At IoU thresholds 0.75..0.95, C is a false positive: AP = 34/101; five thresholds each.
    result = mean_average_precision(PRED, TRUTH)
    assert result["map_50"] == pytest.approx(56 / 101, abs=1e-4)
    assert result["map"] == pytest.approx((5 * 56 / 101 + 5 * 34 / 101) / 10, abs=1e-4)


def test_map_is_zero_for_wrong_class():
    wrong = [det(p.boxes.tolist(), [2] * len(p.labels), p.scores.tolist()) for p in PRED]
    assert mean_average_precision(wrong, TRUTH)["map_50"] == 0.0


def test_frame_f1_cases():
    assert frame_f1(PRED[0], TRUTH[0]) == pytest.approx(2 * 1 / (2 + 2))
    assert frame_f1(PRED[1], TRUTH[1]) == 1.0
    assert frame_f1(PRED[1], TRUTH[1], iou=0.8) == 0.0
    assert frame_f1(Detections.empty(), Detections.empty()) == 1.0
    assert frame_f1(Detections.empty(), TRUTH[1]) == 0.0
    assert frame_f1(PRED[1], Detections.empty()) == 0.0
    # a low-confidence detection is ignored
    assert frame_f1(det([[0, 0, 10, 10]], [1], [0.3]), Detections.empty()) == 1.0
    # one prediction cannot match two objects
    both = det([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1])
    assert frame_f1(det([[0, 0, 10, 10]], [1], [0.9]), both) == pytest.approx(2 / 3)

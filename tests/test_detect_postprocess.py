"""NMS, confidence filter, class filter and max_det on hand-made predictions."""
from __future__ import annotations

import pytest
import torch

from zoo.tasks.detection.postprocess import non_max_suppression


def _pred(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3) -> torch.Tensor:
    """(1, 4 + nc, A) from rows (cx, cy, w, h, class, score)."""
    out = torch.zeros(1, 4 + nc, len(rows))
    for a, (cx, cy, w, h, c, s) in enumerate(rows):
        out[0, :4, a] = torch.tensor([cx, cy, w, h])
        out[0, 4 + c, a] = s
    return out


def test_overlapping_boxes_of_one_class_keep_the_best():
    # IoU of [0,0,100,100] and [10,0,110,100] = 9000 / 11000 = 0.818 > 0.7 -> suppressed.
    out = non_max_suppression(_pred([(50, 50, 100, 100, 1, 0.6), (60, 50, 100, 100, 1, 0.9)]))[0]
    assert out.tolist() == [[10.0, 0.0, 110.0, 100.0, pytest.approx(0.9), 1.0]]


def test_nms_is_class_aware_unless_agnostic():
    pred = _pred([(50, 50, 100, 100, 0, 0.6), (60, 50, 100, 100, 1, 0.9)])
    assert len(non_max_suppression(pred)[0]) == 2
    assert non_max_suppression(pred, agnostic=True)[0][:, 5].tolist() == [1.0]


def test_below_threshold_iou_keeps_both():
    # IoU of [0,0,100,100] and [50,0,150,100] = 5000 / 15000 = 0.333 < 0.7.
    out = non_max_suppression(_pred([(50, 50, 100, 100, 2, 0.5), (100, 50, 100, 100, 2, 0.8)]))[0]
    assert out[:, 4].tolist() == pytest.approx([0.8, 0.5])


def test_confidence_filter_is_strict_and_class_filter_applies():
    pred = _pred([(50, 50, 10, 10, 0, 0.25), (200, 50, 10, 10, 1, 0.3), (400, 50, 10, 10, 2, 0.9)])
    assert non_max_suppression(pred, conf=0.25)[0][:, 5].tolist() == [2.0, 1.0]
    assert non_max_suppression(pred, conf=0.25, classes=[1])[0][:, 5].tolist() == [1.0]
    with pytest.raises(ValueError, match="outside the model's classes"):
        non_max_suppression(pred, classes=[7])


def test_max_det_keeps_the_highest_scores():
    rows = [(50 * i, 50, 10, 10, 0, 0.3 + 0.05 * i) for i in range(10)]
    out = non_max_suppression(_pred(rows), max_det=3)[0]
    assert out[:, 4].tolist() == pytest.approx([0.75, 0.7, 0.65])


def test_bad_output_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(B, 4 \+ num_classes, anchors\)"):
        non_max_suppression(torch.zeros(1, 4, 10))

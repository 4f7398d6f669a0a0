"""Agreement on unlabelled photos: COCO mAP of a file's detections scored against the reference's (issue 14)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.tasks.detection.agreement import agreement

NC = 3
SIDE = 64


def _decoded(boxes: list[tuple[float, float, float, float, int, float]]) -> torch.Tensor:
    """A (1, 4 + NC, A) decoded detector output: one anchor per box (cx, cy, w, h, class, score)."""
    out = torch.zeros(1, 4 + NC, max(len(boxes), 1))
    for a, (cx, cy, w, h, c, s) in enumerate(boxes):
        out[0, :4, a] = torch.tensor([cx, cy, w, h])
        out[0, 4 + c, a] = s
    return out


def _fixed(boxes):
    return lambda x: _decoded(boxes)


IMAGES = [np.zeros((SIDE, SIDE, 3), np.uint8)]
REFERENCE = [(20.0, 20.0, 10.0, 10.0, 0, 0.9), (45.0, 45.0, 12.0, 8.0, 2, 0.8)]


def test_identical_outputs_agree_perfectly():
    found = agreement(_fixed(REFERENCE), _fixed(REFERENCE), IMAGES, imgsz=SIDE, num_classes=NC)
    assert found.ap == pytest.approx(1.0) and found.ap50 == pytest.approx(1.0) and found.reference_boxes == 2


def test_a_box_shifted_to_iou_0_6_counts_at_three_of_ten_thresholds():
    # 10x10 box shifted right by s: IoU = (10 - s) / (10 + s) = 0.6 for s = 2.5 -> a match at IoU thresholds 0.50,
    # 0.55 and 0.60 only, so that class's AP is 3/10; the other class is unchanged (AP 1): mean 0.65, AP50 1.
    shifted = [(22.5, 20.0, 10.0, 10.0, 0, 0.9), REFERENCE[1]]
    found = agreement(_fixed(REFERENCE), _fixed(shifted), IMAGES, imgsz=SIDE, num_classes=NC)
    assert found.ap50 == pytest.approx(1.0)
    assert found.ap == pytest.approx((0.3 + 1.0) / 2, abs=1e-6)


def test_a_missed_box_and_a_wrong_class_lower_agreement():
    # class 0 found, class 2 predicted as class 1: class 2 has recall 0 (AP 0), class 1 has no reference box
    # (not averaged): mAP50 = (1 + 0) / 2.
    wrong = [REFERENCE[0], (45.0, 45.0, 12.0, 8.0, 1, 0.8)]
    found = agreement(_fixed(REFERENCE), _fixed(wrong), IMAGES, imgsz=SIDE, num_classes=NC)
    assert found.ap50 == pytest.approx(0.5)


def test_a_reference_that_detects_nothing_gives_nan_not_a_perfect_score():
    found = agreement(_fixed([]), _fixed(REFERENCE), IMAGES, imgsz=SIDE, num_classes=NC)
    assert math.isnan(found.ap) and found.reference_boxes == 0

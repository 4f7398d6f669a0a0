"""Saliency metrics against hand-computed values: energy in box, pointing, AUC, deletion/insertion, grids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.tasks.detection.explain_metrics import (auc, box_mask, energy_in_boxes, perturbation_curves,
                                                 pointing_hit, random_map, summary)
from zoo.tasks.detection.explain_targets import BoxConfidenceTarget, to_input_grid, to_original_grid
from zoo.tasks.detection.preprocess import letterbox


def test_box_mask_takes_pixels_whose_centres_are_inside():
    mask = box_mask((6, 8), np.array([[1.0, 2.0, 4.0, 5.0]]))  # columns 1..3, rows 2..4
    expected = np.zeros((6, 8), bool)
    expected[2:5, 1:4] = True
    np.testing.assert_array_equal(mask, expected)


def test_energy_pointing_and_summary_by_hand():
    m = np.zeros((10, 10))
    m[0:5, 0:5] = 1.0  # 25 units inside the box
    m[9, 9] = 3.0  # the peak, 3 units outside
    box = np.array([[0, 0, 5, 5]])
    assert energy_in_boxes(m, box) == pytest.approx(25 / 28)
    assert not pointing_hit(m, box)
    s = summary(m, box)
    assert s["peak_xy"] == [9, 9] and s["box_area_share"] == pytest.approx(0.25)
    assert s["energy_in_boxes"] == pytest.approx(25 / 28) and s["max"] == 3.0
    assert summary(np.ones((4, 4)))["normalized_entropy"] == pytest.approx(1.0)


def test_random_map_energy_is_the_area_share_on_average():
    box = np.array([[10, 10, 42, 42]])  # 1024 of 4096 pixels
    e = [energy_in_boxes(random_map((64, 64), seed=s), box) for s in range(200)]
    assert np.mean(e) == pytest.approx(0.25, abs=0.02)
    np.testing.assert_array_equal(random_map((64, 64), seed=3), random_map((64, 64), seed=3))


def test_auc_is_the_trapezoid():
    assert auc([0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert auc([0, 1.0], [1.0, 1.0]) == pytest.approx(1.0)


def test_deletion_removes_the_most_salient_pixels_first():
    image = torch.zeros(1, 3, 4, 4)
    image[0, :, 0, 0] = 1.0  # one bright pixel; the "model" scores its brightness
    saliency = np.zeros((4, 4))
    saliency[0, 0] = 1.0

    def mean_fill(img, keep):  # a stand-in imputer: known pixels kept, unknown = 0
        return img * keep

    dele, ins = perturbation_curves(lambda x: float(x[0, 0, 0, 0]), image, saliency, fractions=(0.0, 1 / 16, 1.0),
                                    imputer=mean_fill)
    assert dele == [1.0, 0.0, pytest.approx(0.0, abs=0.05)]
    assert ins[1:] == [1.0, 1.0]


def test_input_grid_is_the_inverse_of_the_original_grid():
    _, info = letterbox(np.zeros((100, 200, 3), np.uint8), 64, auto=False)
    m = np.zeros((100, 200), np.float32)
    m[:50, :100] = 1.0
    back = to_original_grid(to_input_grid(m, info), info)
    assert np.abs(back - m).mean() < 0.05
    assert to_input_grid(m, info)[:16].max() == 0.0  # the top padding bar


def test_box_confidence_is_the_best_overlapping_same_class_score():
    # 3 anchors (cx, cy, w, h) + 2 classes: anchor 1 overlaps the box, anchor 2 does not
    out = torch.tensor([[10.0, 11.0, 50.0], [10.0, 10.0, 50.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.0],
                        [0.2, 0.7, 0.9], [0.1, 0.3, 0.1]])
    assert float(BoxConfidenceTarget([5, 5, 15, 15], 0)(out)) == pytest.approx(0.7)
    assert float(BoxConfidenceTarget([100, 100, 110, 110], 0)(out)) == 0.0

"""Known boxes through every training augmentation: the box must stay on the drawn object."""
from __future__ import annotations

import numpy as np
import pytest

from zoo.tasks.detection.augment import (
    PAD_VALUE, Sample, box_candidates, hflip, hsv_jitter, letterbox_square, mosaic4, random_affine, resize_long_side,
    transform_boxes, warp_affine,
)

RED = (255, 0, 0)


def _picture(w: int, h: int, rects: list[tuple[int, int, int, int]], colors=None) -> Sample:
    """Gray image with solid rectangles; box = exactly the painted pixels (continuous coordinates)."""
    img = np.full((h, w, 3), 60, dtype=np.uint8)
    colors = colors or [RED] * len(rects)
    for (x1, y1, x2, y2), c in zip(rects, colors):
        img[y1:y2, x1:x2] = c
    return Sample(img, np.array(rects, dtype=np.float32), np.arange(len(rects)))


def _painted_extent(img: np.ndarray, color=RED) -> tuple[int, int, int, int]:
    """Bounding box (continuous coords) of the pixels closer to ``color`` than to anything else."""
    d = np.abs(img.astype(int) - np.array(color)).sum(-1)
    ys, xs = np.nonzero(d < 200)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_resize_long_side_scales_boxes_per_axis():
    s = resize_long_side(_picture(200, 100, [(20, 10, 60, 50)]), 100)
    assert s.image.shape == (50, 100, 3)
    assert s.boxes.tolist() == [[10, 5, 30, 25]]
    assert np.allclose(_painted_extent(s.image), (10, 5, 30, 25), atol=1)


def test_letterbox_square_centres_and_shifts_boxes():
    s = letterbox_square(_picture(100, 50, [(10, 5, 30, 25)]), 100)
    assert s.image.shape == (100, 100, 3)
    assert s.boxes.tolist() == [[10, 30, 30, 50]]  # top pad = round(25 - 0.1) = 25
    assert (s.image[:25] == PAD_VALUE).all() and (s.image[75:] == PAD_VALUE).all()
    assert _painted_extent(s.image) == (10, 30, 30, 50)


def test_letterbox_square_refuses_larger_image():
    with pytest.raises(ValueError, match="resize_long_side"):
        letterbox_square(_picture(120, 50, []), 100)


def test_warp_affine_moves_box_with_pixels():
    s = _picture(120, 100, [(40, 20, 80, 60)])
    m = np.array([[0.5, 0, 10], [0, 0.5, 5], [0, 0, 1]])  # scale 0.5 then shift (10, 5)
    out = warp_affine(s, m, (64, 64))
    assert out.boxes.tolist() == [[30, 15, 50, 35]]
    assert np.allclose(_painted_extent(out.image), (30, 15, 50, 35), atol=1)
    assert (out.image[-1, -1] == PAD_VALUE).all()  # outside the source: fill colour


def test_transform_boxes_rotation_gives_enclosing_box():
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    m = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    got = transform_boxes(np.array([[0, 0, 2, 2]], dtype=np.float32), m)[0]
    assert np.allclose(got, [-np.sqrt(2), 0, np.sqrt(2), 2 * np.sqrt(2)], atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_keeps_boxes_on_the_object(seed):
    s = letterbox_square(_picture(128, 128, [(30, 40, 90, 100)]), 128)
    out = random_affine(s, 128, np.random.default_rng(seed), translate=0.1, scale=0.5)
    assert out.image.shape == (128, 128, 3)
    if len(out.boxes):
        assert np.allclose(_painted_extent(out.image), out.boxes[0], atol=1.5)
        assert (out.boxes >= 0).all() and (out.boxes <= 128).all()


def test_box_candidates_drop_slivers_and_mostly_cut_boxes():
    before = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    after = np.array([[0, 0, 10, 10], [0, 0, 10, 1.5], [0, 0, 3, 3]], dtype=np.float32)
    assert box_candidates(before, after).tolist() == [True, False, False]  # 1.5 px high; 9% of the area


def test_mosaic4_places_four_images_around_the_centre():
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    samples = [_picture(64, 48, [(8, 8, 40, 40)], [c]) for c in colors]
    for i, smp in enumerate(samples):
        smp.classes[:] = i
    rng = np.random.default_rng(5)
    xc, yc = (int(v) for v in np.random.default_rng(5).uniform(32, 96, 2))  # same draws as mosaic4
    out = mosaic4(samples, 64, rng)
    assert out.image.shape == (128, 128, 3)
    # image 0 ends at the centre (top-left quadrant), image 3 starts there (bottom-right)
    expected = {0: (xc - 64 + 8, yc - 48 + 8, xc - 64 + 40, yc - 48 + 40), 3: (xc + 8, yc + 8, xc + 40, yc + 40)}
    for cls, box in expected.items():
        x1, y1, x2, y2 = (max(v, 0) for v in box)
        if x2 > x1 and y2 > y1:
            k = list(out.classes).index(cls)
            assert out.boxes[k].tolist() == [x1, y1, x2, y2]
            assert _painted_extent(out.image, colors[cls]) == (x1, y1, x2, y2)
    assert (out.boxes >= 0).all() and (out.boxes <= 128).all()


def test_mosaic_then_affine_boxes_match_pixels():
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255)]
    samples = [_picture(64, 64, [(10, 12, 50, 44)], [c]) for c in colors]
    for i, smp in enumerate(samples):
        smp.classes[:] = i
    for seed in range(4):
        rng = np.random.default_rng(seed)
        out = random_affine(mosaic4(samples, 64, rng), 64, rng, scale=0.3)
        for box, cls in zip(out.boxes, out.classes):
            assert np.allclose(_painted_extent(out.image, colors[cls]), box, atol=1.5)


def test_hflip_mirrors_boxes_and_pixels():
    out = hflip(_picture(100, 40, [(10, 5, 30, 25)]))
    assert out.boxes.tolist() == [[70, 5, 90, 25]]
    assert _painted_extent(out.image) == (70, 5, 90, 25)


def test_hsv_jitter_zero_gains_is_identity_and_value_gain_scales_brightness():
    img = np.full((8, 8, 3), 100, dtype=np.uint8)  # gray: hue/saturation 0, value 100
    assert hsv_jitter(img, np.random.default_rng(0), 0, 0, 0) is img
    gain = np.random.default_rng(1).uniform(-1, 1, 3)[2] * 0.4 + 1  # the value gain hsv_jitter will draw
    out = hsv_jitter(img, np.random.default_rng(1), 0.0, 0.7, 0.4)
    assert np.abs(out.astype(int) - int(100 * gain)).max() <= 1

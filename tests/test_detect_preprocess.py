"""Letterbox geometry and the OpenCV-exact resize, checked against hand arithmetic and the golden input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from zoo.eval.images import load_image

from zoo.tasks.detection.postprocess import scale_boxes
from zoo.tasks.detection.preprocess import letterbox, letterbox_geometry, preprocess_batch
from zoo.tasks.detection.resize import resize_linear


@pytest.mark.parametrize("orig_hw, auto, expected", [
    # bus.jpg: r = 640/1080, 810 * r = 480 exactly -> no padding at all (reference README).
    ((1080, 810), True, ((640, 480), (0, 0, 0, 0))),
    # 720p: r = 0.5 -> 360 x 640; pad 280 -> rect keeps 280 % 32 = 24 -> 12 / 12.
    ((720, 1280), True, ((360, 640), (12, 12, 0, 0))),
    ((720, 1280), False, ((360, 640), (140, 140, 0, 0))),
    # r = 640/500 = 1.28 -> 480 x 640; pad 160 % 32 = 0 (rect) or 160 -> 80 / 80 (square).
    ((375, 500), True, ((480, 640), (0, 0, 0, 0))),
    ((375, 500), False, ((480, 640), (80, 80, 0, 0))),
    # r = min(640/500, 640/333) = 1.28 -> 333 * 1.28 = 426.24 -> 426 wide; pad 214 % 32 = 22 -> 11 / 11.
    ((500, 333), True, ((640, 426), (0, 0, 11, 11))),
    # odd padding: 640 x 617 -> pad 23 % 32 = 23 -> dw = 11.5 -> left round(11.4) = 11, right round(11.6) = 12.
    ((640, 617), True, ((640, 617), (0, 0, 11, 12))),
])
def test_letterbox_geometry_matches_official_rounding(orig_hw, auto, expected):
    size, pads, _ = letterbox_geometry(orig_hw, 640, auto=auto, stride=32)
    assert (size, pads) == expected


def test_letterbox_pads_with_114_and_centres_the_image():
    img = np.zeros((720, 1280, 3), dtype=np.uint8)
    out, info = letterbox(img, 640, auto=False)
    assert out.shape == (640, 640, 3)
    assert (out[:140] == 114).all() and (out[-140:] == 114).all() and (out[140:500] == 0).all()
    assert info.pad_tl == (0, 140) and info.ratio == 0.5


def test_scale_boxes_inverts_the_letterbox():
    # A box in original pixels, mapped into the 640x640 square letterbox of a 720x1280 image and back.
    box = torch.tensor([[100.0, 50.0, 300.0, 700.0]])
    letterboxed = box * 0.5 + torch.tensor([0.0, 140.0, 0.0, 140.0])
    back = scale_boxes(letterboxed, (640, 640), (720, 1280))
    assert torch.allclose(back, box)
    clipped = scale_boxes(torch.tensor([[-10.0, 100.0, 700.0, 650.0]]), (640, 640), (720, 1280))
    assert clipped.tolist() == [[0.0, 0.0, 1280.0, 720.0]]


def test_resize_halving_is_opencvs_rounded_2x2_mean():
    # OpenCV routes an exact 2x downscale to INTER_AREA: (a + b + c + d + 2) >> 2.
    img = np.array([[0, 1, 10, 20], [1, 1, 30, 40]], dtype=np.uint8)
    assert resize_linear(img, (1, 2)).tolist() == [[(0 + 1 + 1 + 1 + 2) >> 2, (10 + 20 + 30 + 40 + 2) >> 2]]


def test_resize_upscale_uses_fixed_point_weights():
    # 1 x 2 -> 1 x 4: x-weights (2048, 0), (1536, 512), (512, 1536), (0, 2048) -> row values
    # v = round-shift((w0 * 0 + w1 * 200) * 2048 ...) = 0, 50, 150, 200.
    img = np.array([[0, 200]], dtype=np.uint8)
    assert resize_linear(img, (1, 4)).tolist() == [[0, 50, 150, 200]]


def test_resize_matches_opencv_bit_for_bit_when_available():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(1, 120, size=2)
        nh, nw = rng.integers(1, 160, size=2)
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        assert np.array_equal(resize_linear(img, (nh, nw)), cv2.resize(img, (int(nw), int(nh)),
                                                                      interpolation=cv2.INTER_LINEAR))


def test_bus_input_tensor_equals_the_official_predictor_input(bus_image, nano_golden):
    ref = nano_golden["bus_unfused_raw_output"]
    x, infos = preprocess_batch([load_image(bus_image)], 640)
    assert tuple(x.shape) == tuple(ref["input"]["shape"])
    assert x.double().sum().item() == pytest.approx(ref["input"]["sum"], abs=1e-6)
    assert x[0, 0, 0, :8].tolist() == ref["input_first8_row0"]
    assert x[0, :, 200, 200].tolist() == ref["input_pixel_c0_y200_x200"]
    assert infos[0].orig_hw == (1080, 810)


def test_mixed_shapes_in_a_batch_are_padded_to_the_square():
    x, infos = preprocess_batch([np.zeros((100, 200, 3), np.uint8), np.zeros((200, 100, 3), np.uint8)], 320)
    assert tuple(x.shape) == (2, 3, 320, 320)
    assert infos[0].pad_tl == (0, 80) and infos[1].pad_tl == (80, 0)


def test_unreadable_image_is_a_clear_error(tmp_path):
    from zoo.core.errors import DataError

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="Unreadable image .*broken.jpg"):
        load_image(bad)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")

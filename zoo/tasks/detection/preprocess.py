"""Letterboxing with the official LeYOLO (ultralytics 8.1.4) conventions.

The released weights were validated on inputs made exactly this way, and the golden detections depend
on every detail (spec ``leyolo.md`` §5.4, ``shared/reference/leyolo/README.md``):

* ratio ``r = min(new_h / h, new_w / w)`` (``scaleup=False`` caps it at 1), resized size
  ``(round(w * r), round(h * r))`` with Python's round-half-even, OpenCV ``INTER_LINEAR`` resize
  (reproduced bit-exactly by :func:`zoo.tasks.detection.resize.resize_linear`);
* padding to ``new_shape``, reduced modulo ``stride`` in ``auto`` ("rect", minimal padding) mode, split
  ``top/left = round(pad / 2 - 0.1)``, ``bottom/right = round(pad / 2 + 0.1)``, fill 114;
* RGB, CHW, float32, / 255, no mean/std.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from zoo.tasks.detection.resize import resize_linear

logger = logging.getLogger(__name__)

PAD_VALUE = 114  # ultralytics LetterBox fill colour (114, 114, 114)


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterboxed image: enough to map boxes back (see ``scale_boxes``).

    Attributes:
        orig_hw: original (height, width).
        input_hw: letterboxed (height, width) fed to the model.
        ratio: resize gain r (new / old).
        pad_tl: (left, top) padding in pixels.
    """

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    ratio: float
    pad_tl: tuple[int, int]


def letterbox_geometry(
    orig_hw: tuple[int, int],
    new_shape: int | tuple[int, int] = 640,
    *,
    auto: bool = True,
    stride: int = 32,
    scaleup: bool = True,
) -> tuple[tuple[int, int], tuple[int, int, int, int], float]:
    """Resized size and padding for one image, following ultralytics ``LetterBox`` arithmetic.

    Args:
        orig_hw: original (height, width).
        new_shape: target side, or (height, width).
        auto: pad only to the next multiple of ``stride`` ("rect" minimal padding) instead of ``new_shape``.
        stride: the model's largest stride.
        scaleup: allow r > 1 (the predictor does; ultralytics val does too for square inputs).

    Returns:
        ``((resized_h, resized_w), (top, bottom, left, right), r)``.
    """
    h, w = int(orig_hw[0]), int(orig_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"Image must be at least 1x1 pixels, got {h}x{w}.")
    nh, nw = (new_shape, new_shape) if isinstance(new_shape, int) else (int(new_shape[0]), int(new_shape[1]))
    if nh < 1 or nw < 1:
        raise ValueError(f"imgsz must be positive, got {new_shape!r}.")
    r = min(nh / h, nw / w)
    if not scaleup:
        r = min(r, 1.0)
    unpad_w, unpad_h = int(round(w * r)), int(round(h * r))
    dw, dh = nw - unpad_w, nh - unpad_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return (unpad_h, unpad_w), (top, bottom, left, right), r


def letterbox(
    image: np.ndarray,
    new_shape: int | tuple[int, int] = 640,
    *,
    auto: bool = True,
    stride: int = 32,
    scaleup: bool = True,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, Letterbox]:
    """Resize and pad an (H, W, 3) uint8 image, keeping its aspect ratio, centred.

    Returns:
        The letterboxed uint8 (H', W', 3) image and its :class:`Letterbox` geometry.
    """
    (rh, rw), (top, bottom, left, right), r = letterbox_geometry(
        image.shape[:2], new_shape, auto=auto, stride=stride, scaleup=scaleup)
    resized = resize_linear(image, (rh, rw)) if (rh, rw) != image.shape[:2] else image
    out = np.full((rh + top + bottom, rw + left + right, image.shape[2]), pad_value, dtype=np.uint8)
    out[top:top + rh, left:left + rw] = resized
    info = Letterbox(orig_hw=(int(image.shape[0]), int(image.shape[1])), input_hw=out.shape[:2],
                     ratio=r, pad_tl=(left, top))
    return out, info


def to_input_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """Stack equally sized (H, W, 3) uint8 RGB images into a float (B, 3, H, W) tensor in [0, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))
    return batch.float().div_(255.0)


def preprocess_batch(
    images: list[np.ndarray],
    imgsz: int | tuple[int, int] = 640,
    *,
    stride: int = 32,
    rect: bool = True,
) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox a list of RGB uint8 images into one model input batch.

    Like the official predictor, minimal ("rect") padding is used only when every image in the batch has
    the same shape; otherwise each image is padded to the full ``imgsz`` square so they can be stacked.

    Returns:
        ``(x, boxes)``: float tensor (B, 3, H, W) in [0, 1] and one :class:`Letterbox` per image.
    """
    if not images:
        raise ValueError("preprocess_batch needs at least one image.")
    same = all(im.shape == images[0].shape for im in images)
    out, infos = [], []
    for im in images:
        lb, info = letterbox(im, imgsz, auto=rect and same, stride=stride)
        out.append(lb)
        infos.append(info)
    return to_input_tensor(out), infos

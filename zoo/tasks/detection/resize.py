"""Bilinear resize of uint8 images, bit-exact with OpenCV's ``cv2.resize(..., INTER_LINEAR)``.

Why not ``F.interpolate`` or PIL: the official LeYOLO predictor letterboxes with OpenCV, which resizes
uint8 images in 11-bit fixed point (``INTER_RESIZE_COEF_BITS``) with its own rounding. Float bilinear
(torch) or PIL's filters land on a different uint8 for a share of the pixels, which moves confidences
and boxes of the golden detections. Re-doing OpenCV's arithmetic here (a few vectorised numpy lines)
gives the same bytes without making OpenCV a dependency; ``tests/test_detect_preprocess.py`` checks
that it matches when OpenCV happens to be installed.

OpenCV's recipe (``modules/imgproc/src/resize.cpp``, ``resizeGeneric_`` with ``HResizeLinear`` and
``VResizeLinear<uchar, int, short, FixedPtCast<...>>``):

* source coordinate ``f = float((d + 0.5) * (1 / (dst / src)) - 0.5)``, ``s = floor(f)``, ``f -= s``;
  along x, ``s < 0`` -> ``(s, f) = (0, 0)`` and ``s >= src - 1`` -> ``(s, f) = (src - 1, 0)``; along y
  the fraction is kept and the two source rows are clipped into the image;
* weights ``round_half_even((1 - f) * 2048)`` and ``round_half_even(f * 2048)`` as int16;
* horizontal pass in int32: ``h = S[s] * a0 + S[s + 1] * a1``;
* vertical pass: ``((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2``.

An exact 2x downscale is routed by OpenCV to ``INTER_AREA``, whose 2x2 mean with ``+2 >> 2`` rounding
is what the formula above produces for weights (1024, 1024), so no special case is needed.
"""
from __future__ import annotations

import numpy as np

_COEF_SCALE = 2048  # 1 << INTER_RESIZE_COEF_BITS (11)


def _linear_taps(src_len: int, dst_len: int, *, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (left, right) and int32 weights (dst_len, 2) for one axis, OpenCV-style.

    ``clamp_weights``: OpenCV zeroes the fraction at the borders for x only; for y it keeps the
    fraction and clips the row indices, which rounds differently in the vertical pass.
    """
    scale = 1.0 / (dst_len / src_len)  # OpenCV stores inv_scale = dst/src and takes 1./inv_scale
    f = ((np.arange(dst_len, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low = s < 0
        s[low], f[low] = 0, 0.0
        high = s >= src_len - 1
        s[high], f[high] = src_len - 1, 0.0
    # cvRound(float * 2048): round half to even, like lrintf.
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    w0 = np.rint((np.float32(1.0) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    left = np.clip(s, 0, src_len - 1)
    right = np.clip(s + 1, 0, src_len - 1)
    return left, right, np.stack([w0, w1], axis=1)


def resize_linear(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) uint8 image to ``size_hw`` exactly as ``cv2.INTER_LINEAR`` does.

    Args:
        image: uint8 array (H, W) or (H, W, C).
        size_hw: target (height, width), both >= 1.

    Returns:
        uint8 array (new_h, new_w[, C]).
    """
    if image.dtype != np.uint8:
        raise TypeError(f"resize_linear expects a uint8 image, got dtype {image.dtype}.")
    new_h, new_w = int(size_hw[0]), int(size_hw[1])
    if new_h < 1 or new_w < 1:
        raise ValueError(f"Resize target must be at least 1x1 pixels, got {new_h}x{new_w}.")
    h, w = image.shape[:2]
    if (h, w) == (new_h, new_w):
        return image.copy()
    squeeze = image.ndim == 2
    img = image[:, :, None] if squeeze else image

    x0, x1, wx = _linear_taps(w, new_w, clamp_weights=True)
    y0, y1, wy = _linear_taps(h, new_h, clamp_weights=False)
    # Horizontal pass on just the source rows the vertical pass reads: (rows, new_w, C) int32.
    rows = np.unique(np.concatenate([y0, y1]))
    src = img[rows].astype(np.int32)
    hor = src[:, x0] * wx[None, :, 0, None] + src[:, x1] * wx[None, :, 1, None]
    lookup = np.empty(h, dtype=np.int64)
    lookup[rows] = np.arange(len(rows))
    h0 = hor[lookup[y0]] >> 4  # (new_h, new_w, C)
    h1 = hor[lookup[y1]] >> 4
    b0 = wy[:, 0, None, None]
    b1 = wy[:, 1, None, None]
    out = (((b0 * h0) >> 16) + ((b1 * h1) >> 16) + 2) >> 2
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out[:, :, 0] if squeeze else out

"""Training augmentations of the LeYOLO recipe (ultralytics 8.1.4 ``v8_transforms``, spec leyolo.md §6).

Order, as in ultralytics: resize the long side to ``imgsz`` -> 4-image mosaic on a 2*imgsz canvas (or a
square letterbox once mosaic is closed) -> random affine (scale, translate; rotation/shear available,
0 in the recipe) cropping back to imgsz x imgsz -> HSV jitter -> horizontal flip.

Everything works on :class:`Sample` (uint8 RGB image, xyxy pixel boxes, class ids) and takes an explicit
``numpy.random.Generator``: the data module derives one per (seed, epoch, image index), so a sample's
augmentation does not depend on worker count, worker scheduling or where a run was resumed.

Box convention: continuous pixel coordinates, pixel ``j`` spans ``[j, j+1)``; a box transformed with the
same matrix as the image stays on the object (the PIL warp below uses the same convention). OpenCV is not
a dependency: resizing and warping use PIL, HSV round-trips through PIL's HSV mode (hue 0-255 instead of
OpenCV's 0-180, so the hue gain scales the same fraction of the colour wheel).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114  # ultralytics fill colour


@dataclass
class Sample:
    """One image and its objects.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) float32 xyxy in pixels of ``image``.
        classes: (N,) int64 class ids.
    """

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)


def resize_long_side(sample: Sample, imgsz: int) -> Sample:
    """Resize so that the long side is ``imgsz`` (ultralytics ``load_image``), boxes scaled per axis."""
    h0, w0 = sample.image.shape[:2]
    r = imgsz / max(h0, w0)
    if r == 1:
        return sample
    w, h = min(math.ceil(w0 * r), imgsz), min(math.ceil(h0 * r), imgsz)
    image = np.asarray(Image.fromarray(sample.image).resize((w, h), Image.Resampling.BILINEAR))
    boxes = sample.boxes * np.array([w / w0, h / h0, w / w0, h / h0], dtype=np.float32)
    return Sample(image, boxes, sample.classes)


def letterbox_square(sample: Sample, size: int) -> Sample:
    """Pad (centred, value 114) an image whose long side is <= ``size`` to ``size`` x ``size``."""
    h, w = sample.image.shape[:2]
    if h > size or w > size:
        raise ValueError(f"letterbox_square expects an image no larger than {size} (got {w}x{h}); "
                         "resize it with resize_long_side first.")
    # ultralytics LetterBox split: top/left = round(pad/2 - 0.1)
    top, left = int(round((size - h) / 2 - 0.1)), int(round((size - w) / 2 - 0.1))
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    out[top:top + h, left:left + w] = sample.image
    return Sample(out, sample.boxes + np.array([left, top, left, top], dtype=np.float32), sample.classes)


def mosaic4(samples: Sequence[Sample], imgsz: int, rng: np.random.Generator) -> Sample:
    """Tile 4 images (each with long side <= imgsz) around a random centre of a 2*imgsz canvas.

    The centre is uniform in [imgsz/2, 3*imgsz/2) on each axis; image 0 goes top-left of it, then
    top-right, bottom-left, bottom-right; each is cut where it leaves the canvas. Boxes are shifted,
    clipped to the canvas and dropped when nothing of them is left.
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic4 needs 4 samples (got {len(samples)}).")
    s = imgsz
    xc, yc = (int(rng.uniform(s / 2, 1.5 * s)) for _ in range(2))
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, dtype=np.uint8)
    boxes, classes = [], []
    for i, smp in enumerate(samples):
        h, w = smp.image.shape[:2]
        if i == 0:  # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif i == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif i == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        canvas[y1a:y2a, x1a:x2a] = smp.image[y1b:y2b, x1b:x2b]
        shift = np.array([x1a - x1b, y1a - y1b] * 2, dtype=np.float32)
        boxes.append(smp.boxes + shift)
        classes.append(smp.classes)
    out_boxes = clip_boxes(np.concatenate(boxes), 2 * s, 2 * s)
    out_classes = np.concatenate(classes)
    keep = (out_boxes[:, 2] > out_boxes[:, 0]) & (out_boxes[:, 3] > out_boxes[:, 1])  # zero-area after clip
    return Sample(canvas, out_boxes[keep], out_classes[keep])


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip xyxy boxes to [0, width] x [0, height]."""
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def affine_matrix(in_hw: tuple[int, int], out_hw: tuple[int, int], rng: np.random.Generator, *,
                  degrees: float = 0.0, translate: float = 0.1, scale: float = 0.5,
                  shear: float = 0.0) -> tuple[np.ndarray, float]:
    """Random 3x3 affine of ultralytics ``RandomPerspective`` (perspective 0): M = T @ S @ R @ C.

    C moves the input centre to the origin, R rotates by U(-degrees, degrees) and scales by
    s ~ U(1 - scale, 1 + scale), S shears, T moves the origin to U(0.5 -+ translate) of the output size.

    Returns:
        ``(M, s)``: the matrix mapping input to output pixel coordinates, and the scale drawn.
    """
    c = np.eye(3)
    c[0, 2], c[1, 2] = -in_hw[1] / 2, -in_hw[0] / 2
    a = math.radians(rng.uniform(-degrees, degrees))
    s = rng.uniform(1 - scale, 1 + scale)
    r = np.eye(3)
    # cv2.getRotationMatrix2D(angle, centre (0, 0), scale): counter-clockwise in image coordinates
    r[:2, :2] = [[s * math.cos(a), s * math.sin(a)], [-s * math.sin(a), s * math.cos(a)]]
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_hw[1]
    t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_hw[0]
    return t @ sh @ r @ c, s


def warp_affine(sample: Sample, matrix: np.ndarray, out_hw: tuple[int, int]) -> Sample:
    """Apply a 3x3 affine to image (bilinear, fill 114) and boxes (4 corners -> enclosing box, clipped).

    Boxes are not filtered here; see :func:`box_candidates`.
    """
    inv = np.linalg.inv(matrix)  # PIL asks, for each output pixel, where to sample in the input
    data = tuple(float(v) for v in inv[:2].reshape(-1))
    image = Image.fromarray(sample.image).transform(
        (out_hw[1], out_hw[0]), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
        fillcolor=(PAD_VALUE,) * 3)
    boxes = transform_boxes(sample.boxes, matrix)
    return Sample(np.asarray(image), clip_boxes(boxes, out_hw[1], out_hw[0]), sample.classes)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes through a 3x3 affine: the axis-aligned box enclosing the 4 mapped corners."""
    n = boxes.shape[0]
    if n == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    corners = np.ones((n * 4, 3))
    corners[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)  # x1y1, x2y2, x1y2, x2y1
    xy = (corners @ matrix.T)[:, :2].reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    return np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], 1).astype(np.float32)


def box_candidates(before: np.ndarray, after: np.ndarray, *, wh_thr: float = 2.0, ar_thr: float = 100.0,
                   area_thr: float = 0.10, eps: float = 1e-16) -> np.ndarray:
    """Boxes worth keeping after a warp (ultralytics): > wh_thr px wide and high, keeping > area_thr of
    their (scaled) area, aspect ratio < ar_thr. ``before`` must already be multiplied by the warp scale."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def random_affine(sample: Sample, out_size: int, rng: np.random.Generator, *, degrees: float = 0.0,
                  translate: float = 0.1, scale: float = 0.5, shear: float = 0.0) -> Sample:
    """Random affine to an ``out_size`` square (from a mosaic canvas or a letterboxed image); boxes that
    lose most of their area are dropped."""
    in_hw = sample.image.shape[:2]
    m, s = affine_matrix(in_hw, (out_size, out_size), rng, degrees=degrees, translate=translate, scale=scale,
                         shear=shear)
    warped = warp_affine(sample, m, (out_size, out_size))
    keep = box_candidates(sample.boxes * s, warped.boxes)
    return Sample(warped.image, warped.boxes[keep], warped.classes[keep])


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hgain: float = 0.015, sgain: float = 0.7,
               vgain: float = 0.4) -> np.ndarray:
    """Multiply hue, saturation and value by random gains 1 + U(-g, g) (ultralytics ``RandomHSV``).

    Hue wraps around, saturation and value saturate at 255; applied through 256-entry lookup tables.
    """
    if not (hgain or sgain or vgain):
        return image
    r = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain]) + 1
    x = np.arange(256, dtype=np.float64)
    lut_h = ((x * r[0]) % 256).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    h, s, v = Image.fromarray(image).convert("HSV").split()
    hsv = Image.merge("HSV", (h.point(lut_h.tolist()), s.point(lut_s.tolist()), v.point(lut_v.tolist())))
    return np.asarray(hsv.convert("RGB"))


def hflip(sample: Sample) -> Sample:
    """Mirror left-right: x1' = W - x2, x2' = W - x1."""
    w = sample.image.shape[1]
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = w - sample.boxes[:, [2, 0]]
    return Sample(np.ascontiguousarray(sample.image[:, ::-1]), boxes, sample.classes)

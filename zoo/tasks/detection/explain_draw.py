"""Pictures of an :class:`Explanation`: the map as a heat overlay with the detections drawn, written atomically.

A jet colour map blended at 50 % over the photo is what grad-cam's ``show_cam_on_image`` and the YOLO
EigenCAM tutorials show, so users read our overlays the way they read theirs; the boxes are drawn by
``Detections.draw`` (the ``zoo predict`` look).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from zoo.core.fileio import atomic_path
from zoo.tasks.detection.detections import Detections


def heat_overlay(image: np.ndarray, saliency: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the image blended with the jet-coloured map (``alpha`` = the map's weight)."""
    from matplotlib import colormaps  # deferred: matplotlib's import is slow and only drawing needs it

    if saliency.shape != image.shape[:2]:
        raise ValueError(f"map is {saliency.shape} but the image is {image.shape[:2]} (h, w).")
    heat = colormaps["jet"](np.clip(saliency, 0.0, 1.0))[..., :3]  # (H, W, 3) in [0, 1]
    blend = (1 - alpha) * image.astype(np.float64) / 255.0 + alpha * heat
    return np.clip(np.round(blend * 255.0), 0, 255).astype(np.uint8)


def draw_explanation(image: np.ndarray, saliency: np.ndarray, detections: Detections,
                     keep: list[int] | None = None) -> np.ndarray:
    """The overlay with the detections (or only those at indices ``keep``) drawn on it."""
    overlay = heat_overlay(image, saliency)
    if keep is not None:
        idx = torch.as_tensor(keep, dtype=torch.long)
        detections = Detections(boxes=detections.boxes[idx], scores=detections.scores[idx],
                                labels=detections.labels[idx], names=detections.names,
                                image_hw=detections.image_hw, source=detections.source)
    return detections.draw(overlay) if len(detections) else overlay


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an RGB uint8 array as PNG atomically (nothing partial is left on error)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path

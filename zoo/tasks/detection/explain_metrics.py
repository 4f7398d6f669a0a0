"""How good is a saliency map: summary statistics, energy-in-box, pointing game, deletion / insertion curves.

Why here and not in the benchmark: ``zoo explain`` writes the summaries, the tests check the energy on the
synthetic set, and ``benchmarks/explain_faithfulness.py`` runs the curves; one definition serves all three.

* energy-in-box (Score-CAM's "energy-based pointing game", arXiv 1910.01279): the share of a map's mass
  inside the true boxes. A map that ignores the image scores the boxes' area share.
* pointing game (Zhang et al., ECCV 2016): the map's peak falls inside a true box.
* deletion / insertion (RISE, arXiv 1806.07421) with ROAD's noisy linear imputation (arXiv 2202.00449,
  grad-cam's ``NoisyLinearImputer``): the detector's confidence in the explained box as the most salient
  pixels are removed (deletion, lower area is better) or as they are revealed on an imputed canvas
  (insertion, higher is better). Imputation, not a grey fill, so a removed region is not a new edge that
  itself changes the output (the ROAD paper's point).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(11))  # 0, 0.1, ..., 1.0 of the pixels


def summary(saliency: np.ndarray, boxes: np.ndarray | torch.Tensor | None = None) -> dict[str, Any]:
    """JSON-ready statistics of one map: range, mean, spread, entropy, peak, and the share inside ``boxes``.

    Args:
        saliency: (H, W) non-negative map.
        boxes: optional (N, 4) xyxy pixel boxes (the detections): adds the share of the map's mass inside
            their union and whether the peak is inside one.
    """
    m = np.asarray(saliency, dtype=np.float64)
    total = float(m.sum())
    p = m.ravel() / total if total > 0 else np.full(m.size, 1.0 / m.size)
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    peak_y, peak_x = np.unravel_index(int(m.argmax()), m.shape)
    out: dict[str, Any] = {
        "min": float(m.min()), "max": float(m.max()), "mean": float(m.mean()), "std": float(m.std()),
        # entropy / ln(H*W): 1.0 for a flat map, towards 0 for a single bright point
        "normalized_entropy": entropy / float(np.log(m.size)) if m.size > 1 else 0.0,
        "peak_xy": [int(peak_x), int(peak_y)],
        "above_half": float((m >= 0.5 * m.max()).mean()) if m.max() > 0 else 0.0,
    }
    if boxes is not None:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out["energy_in_boxes"] = energy_in_boxes(m, b)
        out["box_area_share"] = float(box_mask(m.shape, b).mean())
        out["peak_in_box"] = pointing_hit(m, b)
    return out


def box_mask(hw: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies inside any xyxy box (pixel i covers [i, i + 1))."""
    mask = np.zeros(hw, dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c0, c1 = int(np.ceil(x1 - 0.5)), int(np.ceil(x2 - 0.5))
        r0, r1 = int(np.ceil(y1 - 0.5)), int(np.ceil(y2 - 0.5))
        mask[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
    return mask


def energy_in_boxes(saliency: np.ndarray, boxes: np.ndarray) -> float:
    """Share of the map's mass inside the union of ``boxes`` (0 for an all-zero map)."""
    m = np.asarray(saliency, dtype=np.float64)
    total = m.sum()
    return float(m[box_mask(m.shape, boxes)].sum() / total) if total > 0 else 0.0


def pointing_hit(saliency: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether the map's maximum lies inside one of ``boxes`` (the first maximum, row-major)."""
    m = np.asarray(saliency)
    y, x = np.unravel_index(int(m.argmax()), m.shape)
    return bool(box_mask(m.shape, boxes)[y, x])


def random_map(hw: tuple[int, int], *, seed: int, cell: int = 8) -> np.ndarray:
    """The random baseline: uniform noise on a (H / cell, W / cell) grid, resized bilinearly, in [0, 1].

    Coarse like a CAM (LeYOLO's finest level is stride 8), so a method is compared with a map of the same
    smoothness that knows nothing of the image.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, max(1, hw[0] // cell), max(1, hw[1] // cell), generator=g)
    m = F.interpolate(coarse, size=hw, mode="bilinear", align_corners=False)[0, 0].numpy()
    return ((m - m.min()) / max(float(m.max() - m.min()), 1e-12)).astype(np.float32)


def _ranked(saliency: np.ndarray) -> np.ndarray:
    """Pixel indices from most to least salient (ties in row-major order: deterministic)."""
    return np.argsort(-np.asarray(saliency, dtype=np.float64).ravel(), kind="stable")


def perturbation_curves(
    score: Callable[[torch.Tensor], float],
    image: torch.Tensor,
    saliency: np.ndarray,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    imputer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[list[float], list[float]]:
    """Deletion and insertion curves of one map.

    Args:
        score: the model's confidence in the explained box for a (1, 3, H, W) input.
        image: (1, 3, H, W) model input in [0, 1].
        saliency: (H, W) map on the same grid.
        fractions: shares of the pixels removed (deletion) / revealed (insertion), increasing.
        imputer: ``f(image (3, H, W), keep (H, W) 1 = known) -> (3, H, W)``; default grad-cam's ROAD
            ``NoisyLinearImputer``.

    Returns:
        (deletion scores, insertion scores), one per fraction.
    """
    if imputer is None:
        from pytorch_grad_cam.metrics.road import NoisyLinearImputer  # optional extra (effzoo[explain])

        imputer = NoisyLinearImputer()
    h, w = image.shape[2:]
    if saliency.shape != (h, w):
        raise ValueError(f"saliency is {saliency.shape} but the image is {(h, w)}.")
    order = _ranked(saliency)
    img = image[0].detach().cpu().float()
    deletion, insertion = [], []
    for f in fractions:
        k = int(round(float(f) * h * w))
        top = torch.zeros(h * w)
        top[torch.from_numpy(order[:k].copy())] = 1.0
        top = top.view(h, w)
        deletion.append(score(_impute(imputer, img, 1.0 - top)[None]))
        insertion.append(score(_impute(imputer, img, top)[None]))
    return deletion, insertion


def _impute(imputer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], img: torch.Tensor,
            keep: torch.Tensor) -> torch.Tensor:
    if bool((keep > 0.5).all()):
        return img
    if not bool((keep > 0.5).any()):
        # Nothing known: the imputation system has a zero right-hand side, so its solution is 0 (plus the
        # imputer's noise); skip solving a system with every pixel unknown.
        return (0.01 * torch.randn_like(img)).clamp(0, 1)
    return imputer(img, keep).clamp(0, 1)


def auc(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Area under a curve sampled at ``fractions`` (trapezoid rule)."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))

"""Seeded COCO-style ground truth and detections with controllable error, for evaluator tests and benchmarks.

Why: checking an evaluator needs sets whose answer is known (perfect predictions -> AP 1.0) or computed
independently (pycocotools on the same shifted boxes), and timing one needs COCO-sized inputs
(5,000 images, 300k detections) without the real dataset, which the project never downloads.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def make_ground_truth(
    num_images: int = 5000,
    *,
    num_categories: int = 80,
    objects_per_image: float = 7.3,
    image_hw: tuple[int, int] = (480, 640),
    crowd_fraction: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """A COCO instances dict with COCO-like statistics (sizes log-uniform from 4 to 400 px).

    Category ids are 1..num_categories (contiguous id + 1), annotation ids 1..N, image ids 1..num_images.
    """
    rng = np.random.default_rng(seed)
    h, w = image_hw
    counts = rng.poisson(objects_per_image, size=num_images)
    n = int(counts.sum())
    image_ids = np.repeat(np.arange(1, num_images + 1), counts)
    bw = np.minimum(np.exp(rng.uniform(np.log(4), np.log(400), n)), w - 1)
    bh = np.minimum(bw * np.exp(rng.normal(0, 0.4, n)), h - 1).clip(2)
    x = rng.uniform(0, 1, n) * (w - bw)
    y = rng.uniform(0, 1, n) * (h - bh)
    cats = rng.integers(1, num_categories + 1, n)
    crowd = rng.uniform(0, 1, n) < crowd_fraction
    # Area != box area, as for COCO masks: the evaluator must read the annotation's own area.
    area = bw * bh * rng.uniform(0.5, 1.0, n)
    boxes = np.round(np.stack([x, y, bw, bh], 1), 2)
    annotations = [
        {"id": i + 1, "image_id": int(im), "category_id": int(c), "bbox": b, "area": round(float(a), 2),
         "iscrowd": int(cr)}
        for i, (im, c, b, a, cr) in enumerate(zip(image_ids, cats, boxes.tolist(), area, crowd))
    ]
    return {
        "images": [{"id": i, "width": w, "height": h, "file_name": f"{i:012d}.jpg"} for i in range(1, num_images + 1)],
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, num_categories + 1)],
    }


def make_detections(
    ground_truth: dict[str, Any],
    *,
    detections_per_image: int = 60,
    jitter: float = 0.1,
    seed: int = 1,
) -> list[dict[str, Any]]:
    """COCO results for ``ground_truth``: jittered copies of the true boxes plus random false positives.

    Each image gets exactly ``detections_per_image`` results (so 5,000 images x 60 = 300k): every true
    box (up to the budget) with its class or, for one in ten, a wrong class, moved by ``jitter`` of its size;
    the rest are random boxes of random classes. Scores are higher, on average, for the true copies.
    """
    rng = np.random.default_rng(seed)
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in ground_truth["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    cat_ids = np.array([c["id"] for c in ground_truth["categories"]])
    results: list[dict[str, Any]] = []
    for img in ground_truth["images"]:
        h, w = img["height"], img["width"]
        gts = by_image.get(img["id"], [])[:detections_per_image]
        k = len(gts)
        if k:
            gt_boxes = np.array([g["bbox"] for g in gts], dtype=np.float64)
            noise = rng.normal(0, jitter, (k, 4)) * gt_boxes[:, [2, 3, 2, 3]]
            boxes = gt_boxes + noise
            boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
            cats = np.array([g["category_id"] for g in gts])
            wrong = rng.uniform(0, 1, k) < 0.1
            cats[wrong] = rng.choice(cat_ids, int(wrong.sum()))
            scores = rng.uniform(0.3, 1.0, k)
        else:
            boxes, cats, scores = np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)
        m = detections_per_image - k
        rw = np.exp(rng.uniform(np.log(4), np.log(300), m))
        rh = rw * np.exp(rng.normal(0, 0.4, m))
        rand = np.stack([rng.uniform(0, w - 1, m), rng.uniform(0, h - 1, m), rw, rh], 1)
        boxes = np.concatenate([boxes, rand])
        cats = np.concatenate([cats, rng.choice(cat_ids, m)])
        scores = np.concatenate([scores, rng.uniform(0.001, 0.6, m)])
        for b, c, s in zip(np.round(boxes, 2).tolist(), cats.tolist(), np.round(scores, 5).tolist()):
            results.append({"image_id": img["id"], "category_id": int(c), "bbox": b, "score": s})
    return results

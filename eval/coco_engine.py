"""pycocotools' ``evaluateImg`` + ``accumulate`` for boxes, re-done on numpy arrays, bit-identical.

Why our own engine rather than faster-coco-eval's C++ core: measured on 5,000 images / 300k detections,
that core spends most of its time outside the matching (building millions of per-image records and a
string-keyed map of matches), and its ``accumulate`` computes precision as ``tp / (tp + fp)`` where
pycocotools computes ``tp / (tp + fp + eps)``; the two differ in the last bit whenever a precision curve
starts with exactly one true positive, so its stats are not identical to the reference. Here:

* IoUs: every (detection, ground truth) combination of every image x category pair in one vectorised
  pass, with pycocotools' double-precision formula (``maskApi.c: bbIou``), crowd = IoA of the detection.
* Matching: pycocotools' greedy loop runs over detections in score order; within one image x category
  that order matters, across pairs it does not, so the loop runs over the detection *rank* (at most
  ``max_dets``) and handles every pair, area range and IoU threshold of that rank at once. The choice
  rule is pycocotools' scan: among unmatched (or crowd) ground truths with IoU >= t, a non-ignored one
  wins over an ignored one, then the highest IoU, then the later one in annotation order.
* Accumulate: pycocotools' formulas on the same concatenation order (images in id order, then score
  rank, stable-sorted by score), one vectorised pass per category x area x max_dets.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from zoo.eval.coco_backends import DetectionArrays, GroundTruthArrays

AREA_RANGES = np.array([[0.0, 1e5 ** 2], [0.0, 32.0 ** 2], [32.0 ** 2, 96.0 ** 2], [96.0 ** 2, 1e5 ** 2]])
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def _iou_thresholds() -> np.ndarray:
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _starts(keys: np.ndarray) -> np.ndarray:
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _bbox_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (n, 4) xywh boxes in pycocotools' operation order; crowd -> intersection / dt area."""
    dw, dh, gw, gh = dt[:, 2], dt[:, 3], gt[:, 2], gt[:, 3]
    w = np.minimum(dw + dt[:, 0], gw + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dh + dt[:, 1], gh + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    union = np.where(crowd, dw * dh, dw * dh + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def run_numpy(gt: GroundTruthArrays, dets: DetectionArrays, max_dets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M) tables for box detections."""
    max_dets = sorted(int(m) for m in max_dets)
    thr = _iou_thresholds()
    n_cat = len(gt.category_ids)
    T, A, M, R = len(thr), len(AREA_RANGES), len(max_dets), len(REC_THRS)

    # --- order ground truth and detections by pair (image index, category index) -----------------------
    g_img = np.searchsorted(gt.image_ids, gt.ann_image)
    g_key = g_img * n_cat + np.searchsorted(gt.category_ids, gt.ann_category)
    g_ord = np.argsort(g_key, kind="stable")  # annotation order within a pair, as COCO indexes it
    g_key, g_box = g_key[g_ord], gt.ann_bbox[g_ord]
    g_area, g_crowd = gt.ann_area[g_ord], gt.ann_crowd[g_ord]
    # _ignore per area range: crowd, or area outside the range (bounds inclusive, as in pycocotools).
    g_ign = g_crowd[None] | (g_area[None] < AREA_RANGES[:, :1]) | (g_area[None] > AREA_RANGES[:, 1:])  # (A, G)

    d_key = np.searchsorted(gt.image_ids, dets.image_id) * n_cat + np.searchsorted(gt.category_ids, dets.category_id)
    d_ord = np.lexsort((-dets.score, d_key))  # per pair by decreasing score, ties in input order (mergesort)
    d_key = d_key[d_ord]
    d_start = _starts(d_key)
    d_len = np.diff(np.r_[d_start, d_key.size])
    rank = np.arange(d_key.size) - np.repeat(d_start, d_len)
    keep = rank < max_dets[-1]
    d_ord, d_key, rank = d_ord[keep], d_key[keep], rank[keep]
    d_box, d_score = dets.bbox[d_ord], dets.score[d_ord]
    d_area = d_box[:, 2] * d_box[:, 3]
    n_det = d_key.size

    # --- greedy matching, one detection rank at a time -------------------------------------------------
    matched = np.zeros((A, T, n_det), dtype=bool)
    d_ign = np.zeros((A, T, n_det), dtype=bool)
    g_start = _starts(g_key)
    g_len = np.diff(np.r_[g_start, g_key.size])
    d_start = _starts(d_key)
    d_len = np.diff(np.r_[d_start, d_key.size])
    common, di, gi = np.intersect1d(d_key[d_start], g_key[g_start], assume_unique=True, return_indices=True)
    if common.size:
        nd, ng, gs, ds = d_len[di], g_len[gi], g_start[gi], d_start[di]
        gt_taken = np.zeros((A, T, g_key.size), dtype=bool)
        for r in range(int(nd.max())):
            act = np.flatnonzero(nd > r)
            dets_r = ds[act] + r  # one detection per active pair
            cnt = ng[act]
            seg = np.r_[0, np.cumsum(cnt)[:-1]]
            cell_det = np.repeat(dets_r, cnt)
            cell_gt = np.repeat(gs[act] - seg, cnt) + np.arange(int(cnt.sum()))
            iou = _bbox_iou(d_box[cell_det], g_box[cell_gt], g_crowd[cell_gt])  # (C,)
            free = ~gt_taken[:, :, cell_gt] | g_crowd[cell_gt]  # (A, T, C)
            cand = free & (iou[None, None] >= thr[None, :, None])
            ign = g_ign[:, None, cell_gt]  # (A, 1, C)
            # Non-ignored candidates win; only without one are ignored ground truths considered.
            has_reg = np.maximum.reduceat(cand & ~ign, seg, axis=2)  # (A, T, P)
            use = cand & (ign != np.repeat(has_reg, cnt, axis=2))
            best = np.maximum.reduceat(np.where(use, iou[None, None], -1.0), seg, axis=2)
            hit = use & (iou[None, None] == np.repeat(best, cnt, axis=2))
            pos = np.where(hit, np.arange(cell_gt.size)[None, None], -1)
            pick = np.maximum.reduceat(pos, seg, axis=2)  # (A, T, P): last best cell, -1 if none
            ok = pick >= 0
            a_i, t_i, p_i = np.nonzero(ok)
            chosen = cell_gt[pick[ok]]
            gt_taken[a_i, t_i, chosen] = True
            matched[a_i, t_i, dets_r[p_i]] = True
            d_ign[a_i, t_i, dets_r[p_i]] = g_ign[a_i, chosen]
    out_of_range = (d_area[None] < AREA_RANGES[:, :1]) | (d_area[None] > AREA_RANGES[:, 1:])  # (A, D)
    d_ign |= ~matched & out_of_range[:, None, :]

    # --- accumulate ------------------------------------------------------------------------------------
    precision = -np.ones((T, R, n_cat, A, M))
    recall = -np.ones((T, n_cat, A, M))
    d_cat, d_img = d_key % n_cat, d_key // n_cat
    g_cat = g_key % n_cat
    npig_all = np.stack([np.bincount(g_cat[~g_ign[a]], minlength=n_cat) for a in range(A)], axis=1)  # (K, A)
    order = np.lexsort((rank, d_img, -d_score, d_cat))  # per category: score desc, then image, then rank
    c_start = np.searchsorted(d_cat[order], np.arange(n_cat + 1))
    has_gt = np.bincount(g_cat, minlength=n_cat) > 0
    valid = ~d_ign  # (A, T, D)
    tp_all, fp_all = matched & valid, ~matched & valid
    for k in range(n_cat):
        idx = order[c_start[k]:c_start[k + 1]]
        if idx.size == 0 and not has_gt[k]:
            continue  # no evaluation entry at all: stays -1, as in pycocotools
        areas = np.flatnonzero(npig_all[k] > 0)  # area ranges without ground truth stay -1
        if areas.size == 0:
            continue
        tp_k, fp_k, rank_k = tp_all[:, :, idx][areas], fp_all[:, :, idx][areas], rank[idx]
        for m, cap in enumerate(max_dets):
            sel = rank_k < cap
            prec, rec = _curves(tp_k[:, :, sel], fp_k[:, :, sel], npig_all[k, areas])
            precision[:, :, k, areas, m] = prec.transpose(1, 2, 0)
            recall[:, k, areas, m] = rec.T
    return precision, recall


def _curves(tps: np.ndarray, fps: np.ndarray, npig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision at the 101 recall thresholds (A, T, R) and final recall (A, T), as pycocotools computes them.

    ``tps``/``fps``: (A, T, n) bools in score order; ``npig``: (A,) non-ignored ground-truth counts.
    """
    n_a, n_t, nd = tps.shape
    if nd == 0:
        return np.zeros((n_a, n_t, len(REC_THRS))), np.zeros((n_a, n_t))
    tp = np.cumsum(tps, axis=2).astype(float)
    fp = np.cumsum(fps, axis=2).astype(float)
    rc = tp / npig[:, None, None]
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]  # precision envelope
    inds = np.empty((n_a, n_t, len(REC_THRS)), dtype=np.int64)
    for a in range(n_a):
        for t in range(n_t):
            inds[a, t] = np.searchsorted(rc[a, t], REC_THRS, side="left")
    q = np.take_along_axis(pr, np.minimum(inds, nd - 1), axis=2)
    return np.where(inds < nd, q, 0.0), rc[:, :, -1]

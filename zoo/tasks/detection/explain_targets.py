"""What a detector's saliency map explains: the anchor behind a detection, its score as a CAM target, the map's pixels.

Why a module of its own: ``zoo.predict`` reports boxes after NMS, but a gradient CAM needs a scalar of the
network's output to differentiate. The scalar here is the class score of the anchor that produced the
reported detection, read from the decoded (4 + nc, A) tensor that effzoo's own ``Detect.decode`` returns,
so the map explains exactly what ``zoo.predict`` reported (same letterbox, same decode, same NMS). The map
the CAM returns is on the letterboxed input; :func:`to_original_grid` undoes the letterbox.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from zoo.tasks.detection.postprocess import xywh_to_xyxy
from zoo.tasks.detection.preprocess import Letterbox


class AnchorScoreTarget:
    """CAM target: the summed class scores of chosen anchors, ``sum_k out[4 + c_k, a_k]``.

    grad-cam calls a target on one image's model output; for LeYOLO that is the decoded (4 + nc, A)
    tensor (box rows then sigmoid class scores). One (anchor, class) pair explains one detection; several
    pairs explain them together (the map of "everything that was detected").
    """

    def __init__(self, anchors: Sequence[int], classes: Sequence[int]) -> None:
        if len(anchors) != len(classes):
            raise ValueError(f"{len(anchors)} anchors but {len(classes)} classes.")
        self.anchors = [int(a) for a in anchors]
        self.classes = [int(c) for c in classes]

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if isinstance(output, (tuple, list)):  # a model that returns (decoded, raw)
            output = output[0]
        if not self.anchors:
            return output.sum() * 0.0  # nothing to explain: a zero with a graph, so backward still runs
        rows = torch.as_tensor(self.classes, device=output.device) + 4
        cols = torch.as_tensor(self.anchors, device=output.device)
        return output[rows, cols].sum()


class BoxConfidenceTarget:
    """Metric target: the detector's confidence that the explained box is still there.

    The best class-``c`` score over anchors whose decoded box overlaps ``box`` (input pixels, xyxy) with
    IoU >= ``min_iou``; 0 when none does. Used by the deletion/insertion curves, where perturbed images may
    move the detection to a neighbouring anchor (a fixed anchor's score would under-count that).
    """

    def __init__(self, box: Sequence[float], cls: int, min_iou: float = 0.5) -> None:
        self.box = torch.as_tensor([float(v) for v in box]).view(1, 4)
        self.cls = int(cls)
        self.min_iou = float(min_iou)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            output = output[0]
        boxes = xywh_to_xyxy(output[:4].T.detach().float())  # (A, 4)
        iou = torchvision.ops.box_iou(self.box.to(boxes.device), boxes)[0]  # (A,)
        scores = output[4 + self.cls]
        ok = iou >= self.min_iou
        if not bool(ok.any()):
            return scores.sum() * 0.0
        return scores[ok].max()


def detection_anchors(decoded: torch.Tensor, dets: torch.Tensor) -> list[int]:
    """The anchor index that produced each NMS-kept detection.

    Args:
        decoded: (4 + nc, A) one image's decoded output (boxes cx, cy, w, h in input pixels, then scores).
        dets: (N, 6) ``x1, y1, x2, y2, score, class`` from ``non_max_suppression`` on that output.

    Returns:
        N anchor indices; NMS keeps rows of ``decoded`` unchanged, so each detection matches its anchor
        exactly (the smallest box + score difference is taken, which is 0 up to float rounding).
    """
    if dets.numel() == 0:
        return []
    decoded = decoded.detach().float().cpu()
    boxes = xywh_to_xyxy(decoded[:4].T)  # (A, 4)
    out = []
    for x1, y1, x2, y2, score, cls in dets.detach().float().cpu().tolist():
        err = (boxes - torch.tensor([x1, y1, x2, y2])).abs().sum(1) + 1e3 * (decoded[4 + int(cls)] - score).abs()
        out.append(int(err.argmin()))
    return out


def match_boxes(decoded: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor | None = None
                ) -> tuple[list[int], list[int], torch.Tensor]:
    """Anchors for user-given boxes (input pixels, xyxy): the anchor maximising IoU x class score.

    ``classes`` None takes each chosen anchor's best class. Returns (anchors, classes, (N, 6) rows
    ``x1, y1, x2, y2, score, class`` of the matched anchors, so the explanation reports what the model
    itself predicts there).
    """
    decoded = decoded.detach().float().cpu()
    anchor_boxes = xywh_to_xyxy(decoded[:4].T)  # (A, 4)
    scores = decoded[4:]  # (nc, A)
    iou = torchvision.ops.box_iou(boxes.float().cpu().view(-1, 4), anchor_boxes)  # (N, A)
    anchors, labels, rows = [], [], []
    for i in range(iou.shape[0]):
        if classes is None:
            best, cls = scores.max(0)
            a = int((iou[i] * best).argmax())
            c = int(cls[a])
        else:
            c = int(classes[i])
            a = int((iou[i] * scores[c]).argmax())
        anchors.append(a)
        labels.append(c)
        rows.append(torch.cat([anchor_boxes[a], scores[c, a].view(1), torch.tensor([float(c)])]))
    return anchors, labels, torch.stack(rows) if rows else torch.zeros(0, 6)


def to_input_boxes(boxes: torch.Tensor, info: Letterbox) -> torch.Tensor:
    """Original-image xyxy boxes -> letterboxed input pixels (the inverse of ``scale_boxes``)."""
    out = boxes.detach().float().cpu().clone().view(-1, 4) * info.ratio
    out[:, [0, 2]] += info.pad_tl[0]
    out[:, [1, 3]] += info.pad_tl[1]
    return out


def to_original_grid(cam: np.ndarray, info: Letterbox) -> np.ndarray:
    """An (H_in, W_in) map on the letterboxed input -> float32 (H, W) on the original image, in [0, 1].

    The padding is cut away, the rest resized bilinearly to the original size, then min-max rescaled (the
    padding carried no image, and a map is read relative to itself).
    """
    left, top = info.pad_tl
    h, w = info.orig_hw
    rh, rw = int(round(h * info.ratio)), int(round(w * info.ratio))
    crop = np.ascontiguousarray(cam[top:top + rh, left:left + rw], dtype=np.float32)
    t = torch.from_numpy(crop)[None, None]
    resized = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    lo, hi = float(resized.min()), float(resized.max())
    return ((resized - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros((h, w), np.float32)


def to_input_grid(saliency: np.ndarray, info: Letterbox) -> np.ndarray:
    """An (H, W) map on the original image -> float32 (H_in, W_in) on the letterboxed input, padding 0.

    The inverse of :func:`to_original_grid` (up to resampling), for perturbation metrics, which change the
    model's input: the padding carries no image, so it is the least salient and perturbed last.
    """
    left, top = info.pad_tl
    h, w = info.orig_hw
    rh, rw = int(round(h * info.ratio)), int(round(w * info.ratio))
    t = torch.from_numpy(np.ascontiguousarray(saliency, dtype=np.float32))[None, None]
    resized = F.interpolate(t, size=(rh, rw), mode="bilinear", align_corners=False)[0, 0].numpy()
    out = np.zeros(info.input_hw, np.float32)
    out[top:top + rh, left:left + rw] = resized
    return out

"""Turn the decoded head output into final boxes: confidence filter, NMS, ``max_det``, back to pixels.

Mirrors ultralytics 8.1.4 ``non_max_suppression`` (``multi_label=False``) and ``scale_boxes``, the code
behind the official LeYOLO numbers: candidates whose best class score exceeds ``conf``, best class only,
at most ``max_nms`` (30000) highest-scoring boxes into NMS, ``max_det`` kept, sorted by score. NMS is
``torchvision.ops.batched_nms`` (class-aware) or ``torchvision.ops.nms`` (agnostic); no IoU is written here.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision

MAX_NMS = 30000  # ultralytics: boxes kept (by score) before NMS


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(…, 4) centre/size boxes to corners, with ultralytics' arithmetic (half sizes, then subtract/add)."""
    half_w = boxes[..., 2] / 2
    half_h = boxes[..., 3] / 2
    return torch.stack([boxes[..., 0] - half_w, boxes[..., 1] - half_h,
                        boxes[..., 0] + half_w, boxes[..., 1] + half_h], dim=-1)


def non_max_suppression(
    prediction: torch.Tensor,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    max_nms: int = MAX_NMS,
) -> list[torch.Tensor]:
    """Filter and suppress the decoded predictions of a batch.

    Args:
        prediction: (B, 4 + nc, A): rows 0-3 = (cx, cy, w, h) in input pixels, then class scores in [0, 1].
        conf: keep candidates whose best class score is strictly above this.
        iou: NMS IoU threshold (boxes overlapping more are suppressed).
        max_det: at most this many detections per image.
        classes: keep only these class ids (``None``: all).
        agnostic: one NMS over all classes instead of one per class.
        max_nms: at most this many highest-scoring candidates go into NMS.

    Returns:
        One float tensor (N, 6) per image: ``x1, y1, x2, y2, score, class``, sorted by decreasing score.
    """
    if prediction.ndim != 3 or prediction.shape[1] < 5:
        raise ValueError(f"Expected model output (B, 4 + num_classes, anchors), got shape {tuple(prediction.shape)}.")
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise ValueError(f"conf and iou must lie in [0, 1], got conf={conf}, iou={iou}.")
    if max_det < 1:
        raise ValueError(f"max_det must be at least 1, got {max_det}.")
    prediction = prediction.detach().float()
    nc = prediction.shape[1] - 4
    class_filter = None
    if classes is not None:
        class_filter = torch.as_tensor(list(classes), dtype=torch.long, device=prediction.device)
        bad = class_filter[(class_filter < 0) | (class_filter >= nc)]
        if bad.numel():
            raise ValueError(f"Class filter {bad.tolist()} outside the model's classes 0..{nc - 1}.")
    output = []
    for pred in prediction:  # (4 + nc, A)
        scores_all = pred[4:]
        best, label = scores_all.max(0)  # (A,), (A,)
        keep = best > conf
        if class_filter is not None:
            keep &= torch.isin(label, class_filter)
        boxes = xywh_to_xyxy(pred[:4, keep].T)  # (n, 4)
        scores, label = best[keep], label[keep]
        if scores.numel() > max_nms:
            top = scores.argsort(descending=True)[:max_nms]
            boxes, scores, label = boxes[top], scores[top], label[top]
        if agnostic:
            kept = torchvision.ops.nms(boxes, scores, iou)
        else:
            kept = torchvision.ops.batched_nms(boxes, scores, label, iou)
        kept = kept[:max_det]
        output.append(torch.cat([boxes[kept], scores[kept, None], label[kept, None].float()], dim=1))
    return output


def scale_boxes(
    boxes: torch.Tensor,
    input_hw: tuple[int, int],
    orig_hw: tuple[int, int],
    *,
    ratio_pad: tuple[float, tuple[int, int]] | None = None,
) -> torch.Tensor:
    """Map (N, 4) xyxy boxes from letterboxed input pixels back to the original image, clipped to it.

    As in ultralytics ``scale_boxes``: without ``ratio_pad`` the gain and the (left, top) padding are
    recomputed from the two shapes (``gain = min(in_h / h, in_w / w)``, ``pad = round((in - orig * gain)
    / 2 - 0.1)``), which is what the official predictor does.
    """
    if ratio_pad is None:
        gain = min(input_hw[0] / orig_hw[0], input_hw[1] / orig_hw[1])
        pad_x = round((input_hw[1] - orig_hw[1] * gain) / 2 - 0.1)
        pad_y = round((input_hw[0] - orig_hw[0] * gain) / 2 - 0.1)
    else:
        gain, (pad_x, pad_y) = ratio_pad
    out = boxes.clone()
    out[:, [0, 2]] -= pad_x
    out[:, [1, 3]] -= pad_y
    out /= gain
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, orig_hw[1])
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, orig_hw[0])
    return out

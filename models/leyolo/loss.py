"""The YOLOv8 detection loss that trained the released LeYOLO weights (spec leyolo.md §6).

ultralytics 8.1.4 ``v8DetectionLoss`` with its ``TaskAlignedAssigner`` (topk 10, alpha 0.5, beta 6.0):

* every image's ground-truth boxes are matched to anchors by the task-aligned metric
  ``t = s^alpha * CIoU^beta`` (s = predicted score of the gt class), keeping the top-k anchors whose centre
  lies inside the box, one gt per anchor (highest CIoU wins);
* class loss: BCE-with-logits against soft targets ``t`` normalised per gt so its best anchor gets the
  gt's best CIoU (gain 0.5);
* box loss: 1 - CIoU weighted by the target score (gain 7.5), ``torchvision.ops.complete_box_iou_loss``;
* DFL: cross-entropy of the 16 distance bins against the two bins around the target distance, clamped to
  ``reg_max - 1 - 0.01`` (gain 1.5);
* every term is divided by the sum of target scores and the total is multiplied by the batch size.

One deliberate difference: the normaliser and the batch multiplier can be passed in, so that under DDP the
engine normalises by the *global* target-score sum and global batch size. Then the gradient averaged over
ranks equals the gradient of one process on the concatenated batch (world-size invariant training);
ultralytics normalises per rank and multiplies by the per-GPU batch, so its gradients shrink with the
number of GPUs. On one process both agree.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import complete_box_iou_loss
from zoo.models.leyolo.head import dist2bbox, make_anchors


def ciou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Element-wise Complete-IoU of two (N, 4) xyxy box sets (torchvision's formula, eps 1e-7) -> (N,)."""
    return 1.0 - complete_box_iou_loss(boxes1, boxes2, reduction="none")


def bbox2dist(anchor_points: Tensor, bbox: Tensor, max_dist: float) -> Tensor:
    """xyxy boxes -> (l, t, r, b) distances from anchor points, clamped to [0, max_dist] (grid units)."""
    x1y1, x2y2 = bbox.chunk(2, -1)
    return torch.cat((anchor_points - x1y1, x2y2 - anchor_points), -1).clamp_(0, max_dist)


def dfl_loss(pred_dist: Tensor, target: Tensor) -> Tensor:
    """Distribution focal loss (GFL, Li et al. 2020) per box side.

    Args:
        pred_dist: (N, 4, reg_max) bin logits.
        target: (N, 4) target distances in bins, already clamped below ``reg_max - 1``.

    Returns:
        (N, 1): mean over the 4 sides of ``CE(left bin) * w_left + CE(right bin) * w_right`` where the
        two bins bracket the target and the weights are the linear-interpolation weights.
    """
    n, sides, reg_max = pred_dist.shape
    tl = target.long()  # (N, 4) bin left of the target
    tr = tl + 1
    wl = tr - target  # weight of the left bin
    wr = 1 - wl
    logits = pred_dist.reshape(-1, reg_max)  # (N*4, reg_max)
    ce_l = F.cross_entropy(logits, tl.view(-1), reduction="none").view(n, sides)
    ce_r = F.cross_entropy(logits, tr.view(-1), reduction="none").view(n, sides)
    return (ce_l * wl + ce_r * wr).mean(-1, keepdim=True)


@dataclass
class Assignment:
    """Output of the assigner for a batch: one target per anchor.

    Attributes:
        labels: (B, A) class id of the assigned gt (0 where unassigned).
        boxes: (B, A, 4) xyxy box of the assigned gt (pixels).
        scores: (B, A, nc) soft class targets (normalised alignment metric at the gt class, else 0).
        fg_mask: (B, A) bool, anchor has a gt.
        gt_index: (B, A) index of the assigned gt within its image.
    """

    labels: Tensor
    boxes: Tensor
    scores: Tensor
    fg_mask: Tensor
    gt_index: Tensor


class TaskAlignedAssigner:
    """TOOD's task-aligned assigner as in ultralytics 8.1.4 (topk 10, alpha 0.5, beta 6.0 for v8 detectors).

    Args:
        num_classes: number of classes.
        topk: anchors kept per gt by alignment metric.
        alpha: exponent of the classification score in the metric.
        beta: exponent of the CIoU in the metric.
        eps: guards the divisions (1e-9 as in ultralytics).
    """

    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9) -> None:
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def __call__(self, pd_scores: Tensor, pd_bboxes: Tensor, anc_points: Tensor, gt_labels: Tensor,
                 gt_bboxes: Tensor, mask_gt: Tensor) -> Assignment:
        """Assign gts to anchors.

        Args:
            pd_scores: (B, A, nc) predicted class probabilities (sigmoid).
            pd_bboxes: (B, A, 4) predicted xyxy boxes in pixels.
            anc_points: (A, 2) anchor centres in pixels.
            gt_labels: (B, M, 1) class ids of the (padded) gts.
            gt_bboxes: (B, M, 4) xyxy gt boxes in pixels.
            mask_gt: (B, M, 1) 1 for real gts, 0 for padding.
        """
        bs, n_max = gt_bboxes.shape[:2]
        if n_max == 0:
            zeros = torch.zeros_like(pd_scores[..., 0])
            return Assignment(zeros.long(), torch.zeros_like(pd_bboxes), torch.zeros_like(pd_scores),
                              zeros.bool(), zeros.long())
        mask_in_gts = _anchors_in_boxes(anc_points, gt_bboxes)  # (B, M, A)
        align, overlaps = self._metrics(pd_scores, pd_bboxes, gt_labels, gt_bboxes, mask_in_gts * mask_gt)
        mask_topk = self._topk_mask(align, mask_gt.expand(-1, -1, self.topk).bool())
        mask_pos = mask_topk * mask_in_gts * mask_gt  # (B, M, A)
        gt_index, fg_mask, mask_pos = _resolve_multiple_gts(mask_pos, overlaps)
        labels, boxes, scores = self._targets(gt_labels, gt_bboxes, gt_index, fg_mask)
        # Normalise: each gt's best anchor gets the gt's best CIoU among its positive anchors.
        align = align * mask_pos
        pos_align = align.amax(dim=-1, keepdim=True)  # (B, M, 1)
        pos_overlaps = (overlaps * mask_pos).amax(dim=-1, keepdim=True)  # (B, M, 1)
        norm = (align * pos_overlaps / (pos_align + self.eps)).amax(-2).unsqueeze(-1)  # (B, A, 1)
        return Assignment(labels, boxes, scores * norm, fg_mask.bool(), gt_index)

    def _metrics(self, pd_scores: Tensor, pd_bboxes: Tensor, gt_labels: Tensor, gt_bboxes: Tensor,
                 mask: Tensor) -> tuple[Tensor, Tensor]:
        """Alignment metric s^alpha * CIoU^beta and CIoU (clamped at 0) for candidate pairs -> (B, M, A) x2."""
        bs, n_max = gt_bboxes.shape[:2]
        na = pd_bboxes.shape[-2]
        mask = mask.bool()  # (B, M, A)
        overlaps = torch.zeros((bs, n_max, na), dtype=pd_bboxes.dtype, device=pd_bboxes.device)
        bbox_scores = torch.zeros((bs, n_max, na), dtype=pd_scores.dtype, device=pd_scores.device)
        b_idx = torch.arange(bs, device=gt_labels.device).view(-1, 1).expand(-1, n_max)  # (B, M)
        cls_idx = gt_labels.squeeze(-1).long().clamp_(0, self.num_classes - 1)  # (B, M)
        bbox_scores[mask] = pd_scores[b_idx, :, cls_idx][mask]  # score of each gt's class at each anchor
        pd_boxes = pd_bboxes.unsqueeze(1).expand(-1, n_max, -1, -1)[mask]  # (K, 4)
        gt_boxes = gt_bboxes.unsqueeze(2).expand(-1, -1, na, -1)[mask]  # (K, 4)
        overlaps[mask] = ciou(gt_boxes, pd_boxes).clamp_(0).to(overlaps.dtype)
        return bbox_scores.pow(self.alpha) * overlaps.pow(self.beta), overlaps

    def _topk_mask(self, metrics: Tensor, topk_mask: Tensor) -> Tensor:
        """(B, M, A) 1 at each gt's top-k anchors by metric (duplicates from masked-out slots removed)."""
        _, topk_idxs = torch.topk(metrics, self.topk, dim=-1, largest=True)  # (B, M, topk)
        topk_idxs.masked_fill_(~topk_mask, 0)
        count = torch.zeros(metrics.shape, dtype=torch.int8, device=metrics.device)
        ones = torch.ones_like(topk_idxs[:, :, :1], dtype=torch.int8)
        for k in range(self.topk):
            count.scatter_add_(-1, topk_idxs[:, :, k:k + 1], ones)
        count.masked_fill_(count > 1, 0)  # index 0 repeated by masked slots is not a real pick
        return count.to(metrics.dtype)

    def _targets(self, gt_labels: Tensor, gt_bboxes: Tensor, gt_index: Tensor,
                 fg_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bs, n_max = gt_bboxes.shape[:2]
        batch_ind = torch.arange(bs, dtype=torch.int64, device=gt_labels.device)[..., None]
        flat_index = gt_index + batch_ind * n_max  # (B, A)
        labels = gt_labels.long().flatten()[flat_index].clamp_(0)  # (B, A)
        boxes = gt_bboxes.view(-1, 4)[flat_index]  # (B, A, 4)
        scores = F.one_hot(labels, self.num_classes)  # (B, A, nc)
        scores = torch.where(fg_mask[:, :, None] > 0, scores, 0)
        return labels, boxes, scores


def _anchors_in_boxes(xy_centers: Tensor, gt_bboxes: Tensor, eps: float = 1e-9) -> Tensor:
    """(B, M, A) 1.0 where an anchor centre lies strictly inside a gt box."""
    n_anchors = xy_centers.shape[0]
    bs, n_boxes, _ = gt_bboxes.shape
    lt, rb = gt_bboxes.view(-1, 1, 4).chunk(2, 2)
    deltas = torch.cat((xy_centers[None] - lt, rb - xy_centers[None]), dim=2).view(bs, n_boxes, n_anchors, -1)
    return deltas.amin(3).gt_(eps)


def _resolve_multiple_gts(mask_pos: Tensor, overlaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """An anchor claimed by several gts keeps the one with the highest CIoU -> (gt_index, fg_mask, mask_pos)."""
    n_max = mask_pos.shape[1]
    fg_mask = mask_pos.sum(-2)  # (B, A)
    if fg_mask.max() > 1:
        multi = (fg_mask.unsqueeze(1) > 1).expand(-1, n_max, -1)  # (B, M, A)
        best = overlaps.argmax(1)  # (B, A)
        is_best = torch.zeros(mask_pos.shape, dtype=mask_pos.dtype, device=mask_pos.device)
        is_best.scatter_(1, best.unsqueeze(1), 1)
        mask_pos = torch.where(multi, is_best, mask_pos).float()
        fg_mask = mask_pos.sum(-2)
    return mask_pos.argmax(-2), fg_mask, mask_pos


class DetectionLoss:
    """v8 detection loss for a head with ``num_classes`` classes and ``reg_max`` DFL bins.

    Args:
        num_classes: classes of the head.
        strides: level strides (8, 16, 32).
        reg_max: DFL bins (16).
        box, cls, dfl: loss gains 7.5 / 0.5 / 1.5 (spec §6).
        topk, alpha, beta: assigner parameters 10 / 0.5 / 6.0.
    """

    def __init__(self, num_classes: int, strides: Sequence[float] = (8, 16, 32), reg_max: int = 16, *,
                 box: float = 7.5, cls: float = 0.5, dfl: float = 1.5, topk: int = 10, alpha: float = 0.5,
                 beta: float = 6.0) -> None:
        self.nc = num_classes
        self.strides = tuple(float(s) for s in strides)
        self.reg_max = reg_max
        self.no = num_classes + 4 * reg_max
        self.gains = (box, cls, dfl)
        self.assigner = TaskAlignedAssigner(num_classes, topk=topk, alpha=alpha, beta=beta)

    def __call__(self, feats: Sequence[Tensor], targets: Tensor, *,
                 normalizer: Callable[[Tensor], Tensor] | None = None,
                 batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Loss of a batch.

        Args:
            feats: the head's raw maps, (B, 4*reg_max + nc, H_i, W_i) for each stride.
            targets: (N, 6) rows ``(image index in batch, class, x1, y1, x2, y2)``, boxes in input pixels.
            normalizer: maps this batch's target-score sum to the divisor of every term; default
                ``max(sum, 1)``. Under DDP the task passes ``max(all-reduced sum, 1) / world_size``
                (see the module docstring).
            batch_size: multiplier of the total; default this batch's size (under DDP: the global batch).

        Returns:
            ``(loss, items)``: the scalar to backpropagate (sum of gained terms x batch size) and the
            detached (3,) tensor of gained terms (box, cls, dfl) for logging.
        """
        b = feats[0].shape[0]
        device = feats[0].device
        # (B, no, A) -> box logits (B, A, 4*reg_max), class logits (B, A, nc); loss math in float32
        pred_distri, pred_scores = torch.cat([f.float().reshape(b, self.no, -1) for f in feats], 2).split(
            (4 * self.reg_max, self.nc), 1)
        pred_scores = pred_scores.permute(0, 2, 1).contiguous()
        pred_distri = pred_distri.permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors([f.float() for f in feats], self.strides, 0.5)  # (A,2),(A,1)

        gt_labels, gt_bboxes = _pad_targets(targets.to(device=device, dtype=torch.float32), b)
        mask_gt = (gt_bboxes.sum(2, keepdim=True) > 0).float()  # (B, M, 1)

        # DFL expectation -> (l, t, r, b) in grid units -> xyxy in grid units
        proj = torch.arange(self.reg_max, dtype=torch.float32, device=device)
        dist = pred_distri.view(b, -1, 4, self.reg_max).softmax(3).matmul(proj)  # (B, A, 4)
        pred_bboxes = dist2bbox(dist, anchor_points, xywh=False)  # (B, A, 4)

        assigned = self.assigner(pred_scores.detach().sigmoid(), pred_bboxes.detach() * stride_tensor,
                                 anchor_points * stride_tensor, gt_labels, gt_bboxes, mask_gt)
        target_scores = assigned.scores.to(pred_scores.dtype)
        score_sum = target_scores.sum()
        score_sum = score_sum.clamp(min=1.0) if normalizer is None else normalizer(score_sum)
        if batch_size is None:
            batch_size = b

        loss_cls = F.binary_cross_entropy_with_logits(pred_scores, target_scores, reduction="none").sum() / score_sum
        fg = assigned.fg_mask
        if fg.any():
            weight = target_scores.sum(-1)[fg].unsqueeze(-1)  # (F, 1)
            target_bboxes = assigned.boxes / stride_tensor  # pixels -> grid units
            iou = ciou(pred_bboxes[fg], target_bboxes[fg]).unsqueeze(-1)  # (F, 1)
            loss_box = ((1.0 - iou) * weight).sum() / score_sum
            target_ltrb = bbox2dist(anchor_points, target_bboxes, self.reg_max - 1 - 0.01)  # (B, A, 4)
            loss_dfl = (dfl_loss(pred_distri[fg].view(-1, 4, self.reg_max), target_ltrb[fg]) * weight).sum()
            loss_dfl = loss_dfl / score_sum
        else:
            # Keep the box branch in the graph (zero gradient) so DDP without find_unused_parameters works
            # on a rank whose batch has no objects.
            loss_box = pred_distri.sum() * 0.0
            loss_dfl = pred_distri.sum() * 0.0
        items = torch.stack((loss_box * self.gains[0], loss_cls * self.gains[1], loss_dfl * self.gains[2]))
        return items.sum() * batch_size, items.detach()


def _pad_targets(targets: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """(N, 6) rows (img, cls, x1, y1, x2, y2) -> padded labels (B, M, 1) and boxes (B, M, 4), M = max per image."""
    device = targets.device
    if targets.shape[0] == 0:
        return torch.zeros(batch_size, 0, 1, device=device), torch.zeros(batch_size, 0, 4, device=device)
    img = targets[:, 0].long()
    counts = torch.bincount(img, minlength=batch_size)
    out = torch.zeros(batch_size, int(counts.max()), 5, device=device)
    for j in range(batch_size):
        rows = targets[img == j, 1:]
        out[j, : rows.shape[0]] = rows
    return out[..., :1], out[..., 1:]

"""End-to-end detector graph: decoded predictions -> NMS -> padded (boxes, scores, classes).

The NMS is the standard ONNX ``NonMaxSuppression`` op, which onnxruntime implements on the CPU and
CUDA providers (and most edge runtimes do too). ``torchvision.ops.batched_nms`` exports to the same op
but only for batch 1 and with torchvision's own symbolic; writing the op ourselves keeps a dynamic batch
and exactly the semantics of :func:`zoo.tasks.detection.postprocess.non_max_suppression` (ultralytics 8.1.4):

* candidates = anchors whose best class score is > ``conf``; best class only (``multi_label=False``);
* class-aware NMS by shifting each box by ``class * 7680`` px (ultralytics ``max_wh``), one NMS class;
* boxes with IoU > ``iou`` suppressed, at most ``max_det`` kept per image, sorted by score.

Outputs (every image padded to ``max_det`` rows): ``boxes`` (B, max_det, 4) float xyxy in input pixels,
``scores`` (B, max_det) float, ``classes`` (B, max_det) int64. Padding rows have class -1, score 0 and a
zero box, so the valid rows of image b are ``classes[b] >= 0``. The 30000-candidate cap of ultralytics
is not applied (it only matters above ~1200 px inputs, where A > 30000).
"""
from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from zoo.runtime.onnx import END_TO_END_OUTPUTS
from zoo.tasks.detection.postprocess import xywh_to_xyxy

MAX_WH = 7680.0  # ultralytics' per-class box offset for class-aware NMS in one pass
OUTPUT_NAMES = END_TO_END_OUTPUTS  # (boxes, scores, classes): the runtime reads them back with unpad()


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` with one class: eager = torchvision NMS per image, export = the ONNX op.

    Returns (N, 3) int64 rows (batch index, 0, box index), grouped by image, each group by score.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_det: int, iou: float,  # type: ignore[override]
                conf: float) -> Tensor:
        rows = []
        for b in range(boxes.shape[0]):
            s = scores[b, 0]
            cand = torch.nonzero(s > conf).flatten()
            keep = cand[torchvision.ops.nms(boxes[b, cand].float(), s[cand].float(), iou)][:max_det]
            rows.append(torch.stack([torch.full_like(keep, b), torch.zeros_like(keep), keep], 1))
        return torch.cat(rows).to(torch.int64) if rows else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_det: int, iou: float, conf: float):  # type: ignore[no-untyped-def]
        max_out = g.op("Constant", value_t=torch.tensor([max_det], dtype=torch.int64))
        iou_t = g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32))
        conf_t = g.op("Constant", value_t=torch.tensor([conf], dtype=torch.float32))
        boxes = g.op("Cast", boxes, to_i=1)  # the op wants float32 (fp16 graphs keep NMS in float)
        scores = g.op("Cast", scores, to_i=1)
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou_t, conf_t, center_point_box_i=0)


class DetectWithNMS(nn.Module):
    """Wrap a detector returning (B, 4 + nc, A) into one returning NMS'ed, padded detections.

    Args:
        detector: eval-mode detector (LeYOLO or anything with the same output).
        conf / iou / max_det: post-processing settings, baked into the graph (as ``zoo.predict``'s).
        keep_decoded: also return the decoded (B, 4 + nc, A) tensor as a 4th output; the exporter uses it
            to check the network and the NMS separately, then removes it from the saved file.
    """

    def __init__(self, detector: nn.Module, *, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 keep_decoded: bool = False) -> None:
        super().__init__()
        if not 0.0 <= conf < 1.0 or not 0.0 < iou <= 1.0:
            raise ValueError(f"NMS needs 0 <= conf < 1 and 0 < iou <= 1 (got conf={conf}, iou={iou}).")
        if max_det < 1:
            raise ValueError(f"max_det must be at least 1 (got {max_det}).")
        self.detector = detector
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.keep_decoded = keep_decoded

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        y = self.detector(x)  # (B, 4 + nc, A)
        y = y[0] if isinstance(y, (tuple, list)) else y
        outs = nms_padded(y, conf=self.conf, iou=self.iou, max_det=self.max_det)
        return (*outs, y) if self.keep_decoded else outs


def nms_padded(y: Tensor, *, conf: float, iou: float, max_det: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 4 + nc, A) decoded predictions -> padded (boxes, scores, classes); see the module docstring."""
    B = y.shape[0]
    boxes = xywh_to_xyxy(y[:, :4].transpose(1, 2))  # (B, A, 4) xyxy, ultralytics arithmetic
    best, label = y[:, 4:].max(1)  # (B, A) best class score and its class
    shifted = boxes + label.unsqueeze(-1).to(boxes.dtype) * MAX_WH  # (B, A, 4): classes never overlap
    sel = _NonMaxSuppression.apply(shifted, best.unsqueeze(1), max_det, iou, conf)  # (N, 3)
    b, idx = sel[:, 0], sel[:, 2]  # (N,), (N,)
    score = best[b, idx]  # (N,)
    # Order by (image, -score) whatever order the runtime returned, then rank within each image.
    order = torch.argsort(b.to(score.dtype) * 2.0 - score)
    b, idx, score = b[order], idx[order], score[order]
    per_image = (b.unsqueeze(1) == torch.arange(B, device=b.device).unsqueeze(0)).sum(0)  # (B,)
    first = torch.cumsum(per_image, 0) - per_image  # (B,) start of each image's run
    rank = torch.arange(b.shape[0], device=b.device) - first[b]  # (N,) 0..max_det-1
    slot = b * max_det + rank  # (N,) row in the flat (B * max_det) output
    out_boxes = torch.zeros(B * max_det, 4, dtype=boxes.dtype, device=y.device)
    out_scores = torch.zeros(B * max_det, dtype=score.dtype, device=y.device)
    out_classes = torch.full((B * max_det,), -1, dtype=torch.int64, device=y.device)
    out_boxes = out_boxes.index_put((slot,), boxes[b, idx])
    out_scores = out_scores.index_put((slot,), score)
    out_classes = out_classes.index_put((slot,), label[b, idx].to(torch.int64))
    return (out_boxes.view(B, max_det, 4), out_scores.view(B, max_det), out_classes.view(B, max_det))

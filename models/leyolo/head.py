"""LeYOLO's DNiN detection head (``Detect``) and the anchor-free box decoding it shares with YOLOv8.

DNiN = "Decoupled Network-in-Network": per level, a box branch and a class branch, each a pointwise
conv, two depthwise 3x3 convs and a final pointwise conv (spec leyolo.md §2.6). It replaces YOLOv8's two
full 3x3 convs per branch. The decoding (DFL expectation over 16 bins, cell-centre anchors, xywh in
input pixels, sigmoid class scores) is exactly the official one so that outputs match the released
model to float32 rounding. Attribute names (``cv2`` = box, ``cv3`` = class, ``dfl.conv``) are the
official state_dict names.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from zoo.models.leyolo.blocks import Conv

STRIDES: tuple[int, int, int] = (8, 16, 32)


class DFL(nn.Module):
    """Distribution Focal Loss integral: softmax over ``reg_max`` bins, expectation with weights 0..reg_max-1.

    The weights live in a frozen 1x1 conv (``dfl.conv.weight``, shape (1, reg_max, 1, 1)) because the
    official model stores them that way; they count as 16 (non-trainable) parameters.

    ``explicit_softmax`` (set by the detection exporter on its deploy copy, never in training or counting)
    writes the same expectation as ``sum(exp(x - max) * w) / sum(exp(x - max))`` over the bin axis. Why:
    onnxruntime runs a Softmax over a non-last axis through two transposes and a slow path, 6.7 ms of
    LeYOLO-Nano@640's ~47 ms at 1 thread, against 0.4 ms for the explicit form (OpenVINO: 1.2 -> 0.5 ms);
    the numbers agree to float32 rounding (``tests/test_leyolo_model.py``).
    """

    explicit_softmax = False

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():  # arange on the CPU: on the meta device it would import torch's decompositions (s)
            self.conv.weight.copy_(torch.arange(reg_max, dtype=torch.float, device="cpu").view(1, reg_max, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, _, a = x.shape  # (B, 4*reg_max, A)
        if self.explicit_softmax:
            x = x.view(b, 4, self.reg_max, a)
            e = (x - x.amax(2, keepdim=True)).exp()  # (B, 4, reg_max, A), each bin <= 1: no overflow
            return (e * self.conv.weight.view(1, 1, self.reg_max, 1)).sum(2) / e.sum(2)
        x = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)  # (B, reg_max, 4, A)
        return self.conv(x).view(b, 4, a)  # (B, 4, A): l, t, r, b distances in stride units


def make_anchors(feats: Sequence[Tensor], strides: Tensor | Sequence[float],
                 offset: float = 0.5) -> tuple[Tensor, Tensor]:
    """Cell-centre anchor points and their strides for a list of (B, C, H_i, W_i) maps.

    Returns:
        points: (A, 2) as (x, y) in grid units of each level, stride-8 level first, row-major.
        stride: (A, 1) the stride of each anchor.
    """
    points, stride_list = [], []
    dtype, device = feats[0].dtype, feats[0].device
    for i, f in enumerate(feats):
        h, w = f.shape[2], f.shape[3]
        sx = torch.arange(w, device=device, dtype=dtype) + offset
        sy = torch.arange(h, device=device, dtype=dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(strides[i]), dtype=dtype, device=device))
    return torch.cat(points), torch.cat(stride_list)


def dist2bbox(distance: Tensor, anchor_points: Tensor, xywh: bool = True, dim: int = -1) -> Tensor:
    """(l, t, r, b) distances from anchor points -> boxes (cx, cy, w, h) or (x1, y1, x2, y2)."""
    lt, rb = distance.chunk(2, dim)
    x1y1 = anchor_points - lt
    x2y2 = anchor_points + rb
    if xywh:
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim)
    return torch.cat((x1y1, x2y2), dim)


class Detect(nn.Module):
    """DNiN head over 3 levels (strides 8/16/32).

    ``forward`` returns the raw maps, one (B, 4*reg_max + nc, H_i, W_i) tensor per level (channels
    0..63 = box DFL logits, then class logits); ``decode`` turns them into (B, 4 + nc, A).

    Args:
        num_classes: number of classes ``nc``.
        channels: input widths of the 3 levels.
        reg_max: DFL bins (16 in every released model).
    """

    def __init__(self, num_classes: int, channels: Sequence[int], reg_max: int = 16) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (got {num_classes}).")
        self.nc = num_classes
        self.nl = len(channels)
        self.reg_max = reg_max
        self.no = num_classes + 4 * reg_max  # outputs per anchor
        self.channels = tuple(channels)
        # Branch widths as in ultralytics Detect: box max(16, ch0//4, 64); class max(ch0, min(nc, 100)).
        c_box = max(16, channels[0] // 4, 4 * reg_max)
        c_cls = max(channels[0], min(num_classes, 100))
        self.cv2 = nn.ModuleList(_dnin_branch(c, c_box, 4 * reg_max) for c in channels)  # box
        self.cv3 = nn.ModuleList(_dnin_branch(c, c_cls, num_classes) for c in channels)  # class
        self.dfl = DFL(reg_max)
        # Not persistent: the official state_dict has no stride entry (the strides follow from the layout).
        device = self.dfl.conv.weight.device  # the meta device when built for parameter counting
        self.register_buffer("stride", torch.tensor(STRIDES[: self.nl], dtype=torch.float, device=device),
                             persistent=False)
        self.bias_init()

    @torch.no_grad()
    def bias_init(self) -> None:
        """Prior biases of the final convs (ultralytics ``Detect.bias_init``, spec §2.6).

        Box logits start at 1.0; class logits at log(5 / nc / (640 / stride)^2), i.e. a prior of about
        5 objects per 640x640 image spread over nc classes, so early training is not swamped by negatives.
        """
        for box, cls, s in zip(self.cv2, self.cv3, STRIDES):
            box[-1].bias.fill_(1.0)
            cls[-1].bias[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        return [torch.cat((self.cv2[i](f), self.cv3[i](f)), 1) for i, f in enumerate(feats)]

    def decode(self, raw: Sequence[Tensor]) -> Tensor:
        """Raw maps -> (B, 4 + nc, A): rows 0..3 = box (cx, cy, w, h) in input pixels, then sigmoid scores."""
        b = raw[0].shape[0]
        x_cat = torch.cat([r.view(b, self.no, -1) for r in raw], 2)  # (B, no, A)
        box, cls = x_cat.split((4 * self.reg_max, self.nc), 1)  # (B, 64, A), (B, nc, A)
        anchors, strides = make_anchors(raw, STRIDES[: self.nl], 0.5)  # (A, 2), (A, 1); constants, so export
        # traces them as such rather than reading the ``stride`` buffer
        dbox = dist2bbox(self.dfl(box), anchors.transpose(0, 1).unsqueeze(0), xywh=True, dim=1)  # (B, 4, A)
        return torch.cat((dbox * strides.transpose(0, 1), cls.sigmoid()), 1)


def _dnin_branch(c_in: int, width: int, c_out: int) -> nn.Sequential:
    """Pointwise Conv -> depthwise 3x3 Conv -> depthwise 3x3 Conv -> plain 1x1 Conv2d with bias."""
    return nn.Sequential(
        Conv(c_in, width, 1),
        Conv(width, width, 3, groups=width),
        Conv(width, width, 3, groups=width),
        nn.Conv2d(width, c_out, 1, bias=True),
    )

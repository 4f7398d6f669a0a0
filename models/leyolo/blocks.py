"""LeYOLO building blocks: ``mn_conv``, the inverted bottleneck, the stock Conv/SPPF, Upsample/Concat.

Each block mirrors the module tree of the official implementation (a fork of ultralytics 8.1.4,
github.com/LilianHollard/LeYOLO) attribute for attribute, because the released checkpoints are loaded
1:1 by state_dict key (spec leyolo.md §2.2-§2.4, §5.3). Two details that look odd but matter:

* ``MnConv`` and the bottleneck's projection conv carry a bias even though BatchNorm follows; the
  released weights have those biases (and the parameter counts include them).
* Every BatchNorm uses eps=1e-3, momentum=0.03 (ultralytics ``initialize_weights``); with PyTorch's
  default eps=1e-5 the released checkpoint gives visibly different outputs.

These modules know nothing about the registry or the network; ``model.py`` assembles them.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

# BatchNorm numerics of the released checkpoint (ultralytics initialize_weights, spec §2.7).
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d with the eps/momentum the released LeYOLO weights were trained with."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MnConv(nn.Module):
    """LeYOLO's ``mn_conv``: Conv2d (with bias) -> BN -> SiLU.

    Used for the stem, the depthwise/pointwise convs inside the inverted bottleneck and the two
    stride-2 downsamplers of the neck (spec §2.2). Padding is 0 when ``k == s`` (a patchify conv) and
    ``k // 2`` otherwise. Attribute names ``c``/``bn``/``act`` are the official state_dict names.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(c_in, c_out, k, s, padding=0 if k == s else k // 2, groups=groups, bias=True)
        self.bn = batch_norm(c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.c(x)))


class InvertedBottleneck(nn.Module):
    """MobileNet inverted bottleneck (the official ``MobileNetV3_BLOCK``), without squeeze-excitation.

    ``layers`` = [MnConv 1x1 c_in->hidden (only if ``expand``)] + MnConv kxk depthwise (stride) +
    Conv2d 1x1 hidden->c_out (bias) + BN, with no activation after the projection (linear bottleneck,
    spec §2.3). The identity shortcut exists iff ``c_in == c_out`` and ``stride == 1``. The YAML's SE
    flag is ignored by the official code, so there is no SE here either.
    """

    def __init__(self, c_in: int, c_out: int, k: int, hidden: int, stride: int = 1, expand: bool = True) -> None:
        super().__init__()
        if not expand and hidden != c_in:
            raise ValueError(f"An inverted bottleneck without expansion needs hidden == c_in (got {hidden} != {c_in}).")
        blocks: list[nn.Module] = [MnConv(c_in, hidden, 1, 1)] if expand else []
        blocks += [
            MnConv(hidden, hidden, k, stride, groups=hidden),  # depthwise; padding k//2 since k != stride
            nn.Conv2d(hidden, c_out, 1, 1, 0, bias=True),  # pointwise projection
            batch_norm(c_out),  # no activation: linear bottleneck
        ]
        self.layers = nn.Sequential(*blocks)
        self.residual = c_in == c_out and stride == 1

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x) if self.residual else self.layers(x)


class Conv(nn.Module):
    """The stock ultralytics ``Conv``: Conv2d (no bias) -> BN -> SiLU; used by SPPF and the Detect head.

    Only these modules are BN-folded by the official ``fuse()`` (spec §4), so only they have ``fuse``.
    After fusing, ``bn`` is an ``nn.Identity`` and ``conv`` carries the folded bias, which gives the
    same state_dict keys as the official fused model (``conv.weight``, ``conv.bias``).
    """

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, groups=groups, bias=False)
        self.bn: nn.Module = batch_norm(c_out)
        self.act = nn.SiLU(inplace=True)

    @property
    def is_fused(self) -> bool:
        return isinstance(self.bn, nn.Identity)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> Conv:
        """Fold BN into the conv in place (eval-mode statistics); a second call is a no-op."""
        if self.is_fused:
            return self
        self.conv = fuse_conv_and_bn(self.conv, self.bn)  # type: ignore[arg-type]
        self.bn = nn.Identity()
        return self


@torch.no_grad()
def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a Conv2d (with bias) equal to ``bn(conv(x))`` in eval mode, in the conv's dtype/device.

    Same arithmetic as ultralytics ``fuse_conv_and_bn`` (scale = gamma / sqrt(var + eps) applied per
    output channel), so fused outputs match the official fused model's rounding.
    """
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
    fused.requires_grad_(False)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    bn_bias = bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
    fused.bias.copy_(scale * conv_bias + bn_bias)
    return fused


class SPPF(nn.Module):
    """Spatial Pyramid Pooling - Fast (stock ultralytics): cv1 1x1 halves, 3 chained 5x5 max-pools, cv2 1x1.

    Sits at the end of the backbone (spec §2.4); the concatenation order [a, m(a), m(m(a)), m(m(m(a)))]
    is fixed by the released weights of ``cv2``.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c_out, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))  # (B, 4*hidden, H, W) -> (B, c_out, H, W)


class Concat(nn.Module):
    """Channel concatenation of a list of maps; a module (not a bare ``torch.cat``) so that it occupies
    its layer index like in the official network, which keeps state_dict indices aligned."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, xs: list[Tensor]) -> Tensor:
        return torch.cat(xs, self.dim)


def upsample2x() -> nn.Upsample:
    """Nearest-neighbour x2 upsampling of the FPAN top-down path (official ``nn.Upsample(None, 2, 'nearest')``)."""
    return nn.Upsample(scale_factor=2.0, mode="nearest")


@torch.no_grad()
def fold_all_batchnorms(model: nn.Module) -> nn.Module:
    """Fold, in place, every BatchNorm that directly follows a conv into it; return ``model`` (eval mode).

    LeYOLO's ``fuse()`` folds only the stock ``Conv`` modules, like the official code, so that FLOP
    counts match the paper; the ``mn_conv`` and bottleneck-projection BatchNorms stay. A deployed graph
    wants them all folded: fewer ops, and an int8 quantizer then sees the conv's real output range
    instead of the pre-BatchNorm one. Only pairs whose order of execution is certain are folded:
    consecutive children of an ``nn.Sequential`` and ``MnConv``'s ``c`` -> ``bn``. The parity check
    compares the export against the caller's unfused model, so the folding is checked too.
    """
    for module in model.modules():
        if isinstance(module, MnConv) and isinstance(module.bn, nn.BatchNorm2d):
            module.c, module.bn = fuse_conv_and_bn(module.c, module.bn), nn.Identity()
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_and_bn(conv, bn), nn.Identity()
    return model.eval()

"""LeYOLO (arXiv 2406.14239): config dataclass and the detector, assembled in plain Python.

The network is the official one layer for layer (spec leyolo.md §3): a MobileNet-style backbone of
inverted bottlenecks, SPPF, the FPAN neck (PAN built only from inverted bottlenecks and two stride-2
``mn_conv`` downsamplers) and the DNiN head. The top-level layers live in ``self.model``, an
``nn.ModuleList`` indexed exactly like the official ``DetectionModel.model`` (Upsample and Concat occupy
their indices without owning tensors), so the released state_dict keys ``model.{i}.…`` load 1:1. The
wiring, which the official code reads from YAML "from" indices, is written out in ``_features``.

Outputs:
    * train mode: the 3 raw head maps, (B, 4*16 + nc, H/s, W/s) for s = 8, 16, 32.
    * eval mode: the decoded tensor (B, 4 + nc, A), rows = (cx, cy, w, h) in input pixels then sigmoid
      class scores, A = sum of H*W/s^2 over the levels. ``forward(x, return_raw=True)`` returns
      ``(decoded, raw_maps)`` like the official eval model.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from zoo.models.leyolo.blocks import SPPF, Concat, Conv, InvertedBottleneck, MnConv, fold_all_batchnorms, upsample2x
from zoo.models.leyolo.coco_names import COCO80_NAMES
from zoo.models.leyolo.head import Detect


@dataclass(frozen=True)
class LeYOLOConfig:
    """Architecture of one LeYOLO variant. Channel numbers in the code are the YAML base widths (Nano),
    scaled by ``width`` with the ultralytics rule (``channels``).

    Attributes:
        width: channel multiplier: 1.0 Nano, 1.33 Small/Medium/Large.
        max_channels: clamp applied to a base width *before* scaling (576 in every LeYOLO YAML, so
            576 * 1.33 -> 768 is allowed).
        stage_depths: inverted bottlenecks in the stride-8/16/32 backbone stages (Nano/Small 2/5/4,
            Medium 3/6/5); the first block of each stage has stride 2.
        neck_depths: inverted bottlenecks in the FPAN groups: top-down s16, top-down s8 (counting its
            non-expanding entry block), bottom-up s16, bottom-up s32 (Nano/Small 3/3/3/3, Medium 4/3/4/3).
        medium_extra_layers: the Medium/Large layout: one extra bottleneck (32w->64w) closing the
            top-down s8 group, one (96w->64w) closing the bottom-up s32 group, and the head taps of the
            released YAML (see ``LeYOLO._features``; spec §2.8).
        num_classes: detector classes (80 for COCO).
        reg_max: DFL bins per box side (16 in every released model).
    """

    width: float = 1.0
    max_channels: int = 576
    stage_depths: tuple[int, int, int] = (2, 5, 4)
    neck_depths: tuple[int, int, int, int] = (3, 3, 3, 3)
    medium_extra_layers: bool = False
    num_classes: int = 80
    reg_max: int = 16

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"width must be > 0 (got {self.width}).")
        if len(self.stage_depths) != 3 or min(self.stage_depths) < 1:
            raise ValueError(f"stage_depths needs 3 depths >= 1 (got {self.stage_depths}).")
        if len(self.neck_depths) != 4 or min(self.neck_depths) < 1:
            raise ValueError(f"neck_depths needs 4 depths >= 1 (got {self.neck_depths}).")
        if self.medium_extra_layers and self.neck_depths[1] < 2:
            raise ValueError("medium_extra_layers taps the 2nd block of the top-down s8 group; "
                             f"neck_depths[1] must be >= 2 (got {self.neck_depths[1]}).")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (got {self.num_classes}).")

    def channels(self, base: int) -> int:
        """Scaled width: ceil(min(base, max_channels) * width / 8) * 8 (ultralytics ``make_divisible``).

        It is a ceiling, not round-to-nearest: 64 * 1.33 = 85.1 -> 88. Round-to-nearest would give 88
        too, but 128 * 1.33 = 170.2 -> 176 only with the ceiling, which the released shapes require.
        """
        return int(math.ceil(min(base, self.max_channels) * self.width / 8) * 8)

    @classmethod
    def nano(cls, **kw: int | float | bool) -> LeYOLOConfig:
        """``leyolonano.yaml``: width 1.0, 1,120,480 params."""
        return cls(**kw)  # type: ignore[arg-type]

    @classmethod
    def small(cls, **kw: int | float | bool) -> LeYOLOConfig:
        """``leyolosmall.yaml``: the Nano layout at width 1.33, 1,917,440 params."""
        return cls(width=1.33, **kw)  # type: ignore[arg-type]

    @classmethod
    def medium(cls, **kw: int | float | bool) -> LeYOLOConfig:
        """``leyolomedium.yaml`` (= ``leyololarge.yaml``): deeper stages and the extra neck layers, 2,402,744 params."""
        return cls(width=1.33, stage_depths=(3, 6, 5), neck_depths=(4, 3, 4, 3), medium_extra_layers=True,
                   **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Layout:
    """Indices of the top-level layers in ``LeYOLO.model`` (= official layer numbers), by role."""

    stem: tuple[int, ...]
    stage8: tuple[int, ...]
    stage16: tuple[int, ...]
    stage32: tuple[int, ...]
    sppf: int
    up16: int
    cat16: int
    td16: tuple[int, ...]
    up8: int
    cat8: int
    td8: tuple[int, ...]
    down16: int
    cat_bu16: int
    bu16: tuple[int, ...]
    down32: int
    cat_bu32: int
    bu32: tuple[int, ...]
    detect: int


class LeYOLO(nn.Module):
    """The LeYOLO detector.

    Args:
        config: architecture (``LeYOLOConfig.nano()`` etc.).
        names: class names, ``config.num_classes`` of them; default COCO-80 when nc == 80, else
            ``class0``, ``class1``, ...
        input_size: the variant's default square input side (metadata for predictors/exporters; any
            multiple of 32 works).

    Attributes:
        model: ``nn.ModuleList`` of the top-level layers, indexed like the official model.
        stride: tensor([8., 16., 32.]), the head's level strides.
        names: tuple of class names; ``num_classes`` = len(names).
        dead_layer_indices: top-level layers whose output never reaches the head (Medium/Large only).
    """

    def __init__(self, config: LeYOLOConfig, names: Sequence[str] | None = None, input_size: int = 640) -> None:
        super().__init__()
        self.config = config
        self.names = _resolve_names(names, config.num_classes)
        self.input_size = input_size
        self.model_name: str | None = None  # set by the registered builders (``leyolo-nano`` ...)
        layers: list[nn.Module] = []
        self.layout, head_channels = _build_layers(config, layers)
        layers.append(Detect(config.num_classes, head_channels, config.reg_max))
        self.model = nn.ModuleList(layers)

    # -- introspection ---------------------------------------------------------------------------
    @property
    def head(self) -> Detect:
        return self.model[self.layout.detect]  # type: ignore[return-value]

    @property
    def stride(self) -> Tensor:
        return self.head.stride

    @property
    def num_classes(self) -> int:
        return self.head.nc

    @property
    def dead_layer_indices(self) -> tuple[int, ...]:
        return self.layout.bu32 if self.config.medium_extra_layers else ()

    @property
    def is_fused(self) -> bool:
        return any(isinstance(m, Conv) and m.is_fused for m in self.modules())

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, x: Tensor, return_raw: bool = False) -> Tensor | list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Run the detector on (B, 3, H, W) images in [0, 1], H and W multiples of 32.

        Returns:
            train mode: list of 3 raw maps (B, 4*reg_max + nc, H/s, W/s), s = 8, 16, 32.
            eval mode: decoded (B, 4 + nc, A); with ``return_raw=True`` the tuple (decoded, raw maps).

        Raises:
            ValueError: ``x`` is not (B, 3, H, W) with H and W multiples of 32.
        """
        _check_input(x)
        raw = self.head(self._features(x))
        if self.training:
            return raw
        y = self.head.decode(raw)
        return (y, raw) if return_raw else y

    def _run(self, indices: tuple[int, ...], x: Tensor) -> list[Tensor]:
        """Run consecutive layers; return every layer's output (the head taps some mid-group outputs)."""
        outs = []
        for i in indices:
            x = self.model[i](x)
            outs.append(x)
        return outs

    def _features(self, x: Tensor) -> list[Tensor]:
        """Backbone + FPAN neck -> the three head inputs (strides 8, 16, 32). Concat order is [path, skip]."""
        m, lay = self.model, self.layout
        x = self._run(lay.stem, x)[-1]  # (B, 16w, H/4, W/4)
        p8 = self._run(lay.stage8, x)[-1]  # (B, 32w, H/8, W/8)
        p16 = self._run(lay.stage16, p8)[-1]  # (B, 64w, H/16, W/16)
        p32 = m[lay.sppf](self._run(lay.stage32, p16)[-1])  # (B, 96w, H/32, W/32)
        # FPAN top-down.
        t16 = self._run(lay.td16, m[lay.cat16]([m[lay.up16](p32), p16]))[-1]  # (B, 64w, H/16, W/16)
        t8 = self._run(lay.td8, m[lay.cat8]([m[lay.up8](t16), p8]))  # each (B, 32w | Medium last 64w, H/8, W/8)
        # FPAN bottom-up.
        b16 = self._run(lay.bu16, m[lay.cat_bu16]([m[lay.down16](t8[-1]), t16]))  # each (B, 64w, H/16, W/16)
        cat32 = m[lay.cat_bu32]([m[lay.down32](b16[-1]), p32])  # (B, 192w, H/32, W/32)
        b32 = self._run(lay.bu32, cat32)  # each (B, 96w | Medium last 64w, H/32, W/32)
        if self.config.medium_extra_layers:
            # Medium/Large wiring quirk (spec §2.8). The released YAML feeds Detect from layers
            # [27, 32, 37] = the 2nd block of the top-down s8 group, the 1st block of the bottom-up s16
            # group and the s32 Concat: Nano's taps [24, 29, 34] shifted by the 3 extra backbone blocks but
            # not by the neck's extra blocks. So the head sees widths [48, 88, 256], and the whole
            # bottom-up s32 group (layers 38-41, 298,072 params) is computed but never used. We keep
            # those layers and compute them, like the official model: the released checkpoints contain
            # them, and the paper's GFLOPs (5.8 @640, 8.4 @768) count them. They get no gradient, so
            # DDP needs find_unused_parameters=True (see ``dead_layer_indices``).
            return [t8[1], b16[0], cat32]
        return [t8[-1], b16[-1], b32[-1]]

    # -- deployment / fine-tuning ----------------------------------------------------------------
    def fuse(self) -> LeYOLO:
        """Fold BatchNorm into the preceding conv where the official ``fuse()`` does, and return ``self``.

        Only the stock ``Conv`` modules (SPPF cv1/cv2 and the 3 Convs per head branch) are fused; the
        ``mn_conv`` and bottleneck-projection BatchNorms stay, as in the official model, so that fused
        FLOP counts reproduce the paper's convention (spec §4). Uses the BN running statistics: call it
        on a trained model, for inference.
        """
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self

    def deploy_copy(self) -> LeYOLO:
        """The deployable float32 CPU copy: ``fuse()`` plus every remaining conv -> BatchNorm pair folded.

        What the exporter traces (a deployed graph wants every BatchNorm gone, and an int8 quantizer then
        sees each conv's real output range); ``self`` is not modified. The exporter's parity check compares
        the copy with this unfused model, so the folding is checked on every export.
        """
        ref = copy.deepcopy(self).cpu().float().eval()
        return fold_all_batchnorms(ref.fuse()).requires_grad_(False)

    def reset_head(self, num_classes: int, names: Sequence[str] | None = None) -> LeYOLO:
        """Replace the Detect head by a freshly initialised one for ``num_classes`` (fine-tuning)."""
        old = self.head
        ref = old.cv2[0][-1].weight
        head = Detect(num_classes, old.channels, old.reg_max).to(device=ref.device, dtype=ref.dtype)
        self.model[self.layout.detect] = head
        self.config = dataclasses.replace(self.config, num_classes=num_classes)
        self.names = _resolve_names(names, num_classes)
        return self


def _build_layers(cfg: LeYOLOConfig, layers: list[nn.Module]) -> tuple[_Layout, list[int]]:
    """Append the top-level layers in official order; return their layout and the head input widths.

    Base widths and hidden widths are the YAML numbers (spec §3), scaled by ``cfg.channels``.
    """
    ch = cfg.channels
    c16, c32, c64, c96 = ch(16), ch(32), ch(64), ch(96)
    d8, d16, d32 = cfg.stage_depths
    n_td16, n_td8, n_bu16, n_bu32 = cfg.neck_depths

    def add(module: nn.Module) -> int:
        layers.append(module)
        return len(layers) - 1

    def stage(c_in: int, c_out: int, k: int, hidden_first: int, hidden: int, depth: int, stride: int) -> list[int]:
        first = add(InvertedBottleneck(c_in, c_out, k, hidden_first, stride))
        return [first] + [add(InvertedBottleneck(c_out, c_out, k, hidden, 1)) for _ in range(depth - 1)]

    # Stem: 3x3 s2 mn_conv, 1x1 mn_conv, non-expanding depthwise bottleneck s2 -> stride 4.
    stem = [add(MnConv(3, c16, 3, 2)), add(MnConv(c16, c16, 1, 1)),
            add(InvertedBottleneck(c16, c16, 3, ch(16), stride=2, expand=False))]
    stage8 = stage(c16, c32, 3, ch(96), ch(96), d8, 2)
    stage16 = stage(c32, c64, 5, ch(96), ch(192), d16, 2)
    stage32 = stage(c64, c96, 5, ch(576), ch(576), d32, 2)
    sppf = add(SPPF(c96, c96, 5))

    up16, cat16 = add(upsample2x()), add(Concat())
    td16 = stage(c96 + c64, c64, 5, ch(128), ch(128), n_td16, 1)
    up8, cat8 = add(upsample2x()), add(Concat())
    # Entry block: depthwise 3x3 directly on the concatenation (no expansion; the YAML's hidden width,
    # explicit 96 for Nano and None for Small, is the concatenation width in both cases).
    td8 = [add(InvertedBottleneck(c64 + c32, c32, 3, c64 + c32, 1, expand=False))]
    td8 += [add(InvertedBottleneck(c32, c32, 3, ch(64), 1)) for _ in range(n_td8 - 1)]
    c_td8 = c32
    if cfg.medium_extra_layers:  # Medium: widen the s8 path to 64w before the first downsampler
        td8.append(add(InvertedBottleneck(c32, c64, 5, ch(128), 1)))
        c_td8 = c64

    down16, cat_bu16 = add(MnConv(c_td8, c64, 3, 2)), add(Concat())
    bu16 = stage(2 * c64, c64, 5, ch(128), ch(128), n_bu16, 1)
    down32, cat_bu32 = add(MnConv(c64, c96, 3, 2)), add(Concat())
    bu32 = stage(2 * c96, c96, 5, ch(192), ch(192), n_bu32, 1)
    if cfg.medium_extra_layers:  # Medium: the dead 96w -> 64w block (see LeYOLO._features)
        bu32.append(add(InvertedBottleneck(c96, c64, 5, ch(128), 1)))
        head_channels = [c32, c64, 2 * c96]
    else:
        head_channels = [c32, c64, c96]

    layout = _Layout(tuple(stem), tuple(stage8), tuple(stage16), tuple(stage32), sppf, up16, cat16, tuple(td16),
                     up8, cat8, tuple(td8), down16, cat_bu16, tuple(bu16), down32, cat_bu32, tuple(bu32),
                     detect=len(layers))
    return layout, head_channels


def _resolve_names(names: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    if names is None:
        return COCO80_NAMES if num_classes == len(COCO80_NAMES) else tuple(f"class{i}" for i in range(num_classes))
    if isinstance(names, str) or len(names) != num_classes:
        got = "a string" if isinstance(names, str) else f"{len(names)} names"
        raise ValueError(f"names must be a sequence of num_classes={num_classes} class names (got {got}).")
    return tuple(str(n) for n in names)


def _check_input(x: Tensor) -> None:
    if torch.jit.is_tracing():  # export traces a fixed, valid example; shape checks would only add warnings
        return
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"LeYOLO expects images of shape (B, 3, H, W) (got {tuple(x.shape)}).")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % 32 or w % 32 or h == 0 or w == 0:
        fix = f"{max(32, math.ceil(h / 32) * 32)}x{max(32, math.ceil(w / 32) * 32)}"
        raise ValueError(f"LeYOLO input height and width must be positive multiples of 32 (got {h}x{w}); "
                         f"letterbox or pad the image, e.g. to {fix}.")

"""Registered LeYOLO variants: Nano, Small, Medium and Large (= the Medium network run at 768).

Paper numbers are those of the LeYOLO README, which repeats the abstract of arXiv 2406.14239 (COCO
val2017 mAP50-95; GFLOPs with ultralytics' fused-model convention, spec leyolo.md §1 and §4). Lower
input sizes are test-time only: every released model was trained at 640.
"""
from __future__ import annotations

from collections.abc import Sequence

from zoo.models.leyolo.checkpoint import leyolo_checkpoint_filter
from zoo.models.leyolo.model import LeYOLO, LeYOLOConfig

from zoo.core.registry import register_model

_SOURCE = "LeYOLO paper abstract / README (arXiv 2406.14239); spec leyolo.md §1"
_EXTRA = {"checkpoint_format": "ultralytics"}
_FILTER = leyolo_checkpoint_filter
# Medium/Large: layers 38-41 (a 96w -> 64w neck block) compute an output the head never reads (spec §2.8).
_MEDIUM_DEAD = ("model.38", "model.39", "model.40", "model.41")


def _create_leyolo(name: str, config: LeYOLOConfig, *, input_size: int, names: Sequence[str] | None) -> LeYOLO:
    model = LeYOLO(config, names=names, input_size=input_size)
    model.model_name = name
    return model


@register_model("leyolo-nano", family="leyolo", task="detection", input_size=640, input_sizes=(320, 480, 640),
                paper={"gflops@320": 0.66, "map50-95@320": 25.2, "gflops@480": 1.47, "map50-95@480": 31.3},
                source=_SOURCE, weights_file="LeYOLONano.pt", checkpoint_filter=_FILTER, extra=_EXTRA)
def leyolo_nano(*, num_classes: int = 80, names: Sequence[str] | None = None) -> LeYOLO:
    """Width 1.0, backbone stages 2/5/4: 1.12 M params, the smallest LeYOLO."""
    return _create_leyolo("leyolo-nano", LeYOLOConfig.nano(num_classes=num_classes), input_size=640, names=names)


@register_model("leyolo-small", family="leyolo", task="detection", input_size=640, input_sizes=(480, 640),
                paper={"gflops@480": 2.53, "map50-95@480": 35.2, "gflops@640": 4.51, "map50-95@640": 38.2},
                source=_SOURCE, weights_file="LeYOLOSmall.pt", checkpoint_filter=_FILTER, extra=_EXTRA)
def leyolo_small(*, num_classes: int = 80, names: Sequence[str] | None = None) -> LeYOLO:
    """The Nano layout at width 1.33: 1.92 M params."""
    return _create_leyolo("leyolo-small", LeYOLOConfig.small(num_classes=num_classes), input_size=640, names=names)


@register_model("leyolo-medium", family="leyolo", task="detection", input_size=640, input_sizes=(640,),
                paper={"gflops@640": 5.8, "map50-95@640": 39.3},
                source=_SOURCE, weights_file="LeYOLOMedium.pt", checkpoint_filter=_FILTER, unused_modules=_MEDIUM_DEAD,
                extra={**_EXTRA, "weights_compatible": ("leyolo-large",)})
def leyolo_medium(*, num_classes: int = 80, names: Sequence[str] | None = None) -> LeYOLO:
    """Width 1.33, deeper stages 3/6/5 and extra neck blocks (incl. 4 dead ones, spec §2.8): 2.40 M params."""
    return _create_leyolo("leyolo-medium", LeYOLOConfig.medium(num_classes=num_classes), input_size=640,
                          names=names)


@register_model("leyolo-large", family="leyolo", task="detection", input_size=768, input_sizes=(768,),
                paper={"gflops@768": 8.4, "map50-95@768": 41.0},
                source=_SOURCE, weights_file="LeYOLOLarge.pt", checkpoint_filter=_FILTER, unused_modules=_MEDIUM_DEAD,
                extra={**_EXTRA, "weights_compatible": ("leyolo-medium",)})
def leyolo_large(*, num_classes: int = 80, names: Sequence[str] | None = None) -> LeYOLO:
    """The Medium network evaluated at 768x768 (the official large YAML equals the medium one)."""
    return _create_leyolo("leyolo-large", LeYOLOConfig.medium(num_classes=num_classes), input_size=768,
                          names=names)

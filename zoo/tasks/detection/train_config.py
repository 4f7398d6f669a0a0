"""Keys of a detection training recipe (``configs/leyolo_*.yaml``) on top of the shared ``TrainConfig``.

Defaults are ultralytics 8.1.4's ``default.yaml``, the settings behind the released LeYOLO weights
(spec leyolo.md §6); ``configs/leyolo_coco.yaml`` spells out the published recipe explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo.core.registry import get_card
from zoo.tasks.base.recipe import TrainConfig, _check_range


@dataclass
class DetectionTrainConfig(TrainConfig):
    """Detection keys (image size, loss gains, augmentation, validation); see ``TrainConfig`` for the rest."""

    data: str = "synthetic"  # synthetic | data YAML (ultralytics) | COCO JSON | folder with train/ and val/
    val_split: str = "val"  # split validated each epoch ("train" to watch a model overfit its training set)
    weights: str = ""  # start from these weights (.safetensors or official .pt) instead of random init
    imgsz: int = 0  # training and validation image size (square, multiple of 32); 0 = the model card's size
    box: float = 7.5  # CIoU box loss gain
    cls: float = 0.5  # BCE class loss gain
    dfl: float = 1.5  # distribution focal loss gain
    mosaic: float = 1.0  # probability of a 4-image mosaic
    close_mosaic: int = 10  # turn mosaic off for the last this-many epochs
    degrees: float = 0.0  # random rotation, +- degrees
    translate: float = 0.1  # random translation, +- fraction of the image size
    scale: float = 0.5  # random scale gain, 1 +- scale
    shear: float = 0.0  # random shear, +- degrees
    hsv_h: float = 0.015  # hue gain, 1 +- hsv_h
    hsv_s: float = 0.7  # saturation gain, 1 +- hsv_s
    hsv_v: float = 0.4  # value (brightness) gain, 1 +- hsv_v
    fliplr: float = 0.5  # probability of a horizontal flip
    # NHWC weights and training inputs: the same network and maths, other kernels; on CPU LeYOLO-Nano's step
    # takes 0.64x the CPU seconds at 320 px (benchmarks/train_step.py --profile, README issue 15). Float
    # rounding differs from NCHW, so runs are not bitwise comparable across the two settings.
    channels_last: bool = False
    conf: float = 0.001  # validation confidence threshold
    iou: float = 0.7  # validation NMS IoU threshold
    max_det: int = 300  # validation detections kept per image

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.imgsz == 0 and self.model:  # the one input-size rule (zoo.core.sizes): unset = the card's size
            self.imgsz = get_card(self.model).input_size
        if self.imgsz < 32 or self.imgsz % 32:
            raise ValueError(f"imgsz={self.imgsz} must be a positive multiple of 32 (LeYOLO's largest stride).")
        for key in ("box", "cls", "dfl", "close_mosaic", "degrees", "translate", "scale", "shear", "hsv_h",
                    "hsv_s", "hsv_v"):
            _check_range(self, key, 0)
        for key in ("mosaic", "fliplr", "conf", "iou", "translate", "hsv_h", "hsv_s", "hsv_v"):
            _check_range(self, key, 0, 1)
        _check_range(self, "scale", 0, 0.99)
        _check_range(self, "max_det", 1)

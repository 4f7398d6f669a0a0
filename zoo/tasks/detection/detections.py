"""``Detections``: the boxes found in one image, in original-image pixels, with COCO and drawing helpers."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.core.fileio import atomic_path
from zoo.eval.images import load_image


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        boxes: float32 (N, 4) ``x1, y1, x2, y2`` in original-image pixels, clipped to the image.
        scores: float32 (N,) confidences, decreasing.
        labels: int64 (N,) contiguous class ids (indices into ``names``).
        names: class id -> class name of the model that produced them.
        image_hw: (height, width) of the original image.
        source: file path or ``"<array>"`` / ``"<tensor>"`` / ``"<PIL>"``, for reports.
        image: the original RGB uint8 (H, W, 3) image when it was kept (``predict(..., keep_images=True)``).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    names: Mapping[int, str]
    image_hw: tuple[int, int]
    source: str = ""
    image: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def class_names(self) -> list[str]:
        """Name of each detection's class, in detection order."""
        return [self.names.get(int(c), str(int(c))) for c in self.labels]

    def to_list(self, decimals: int | None = None) -> list[dict[str, Any]]:
        """Plain dicts ``{class_id, name, score, xyxy}`` (JSON-ready), optionally rounded."""
        rnd = (lambda v: round(float(v), decimals)) if decimals is not None else float
        return [{"class_id": int(c), "name": self.names.get(int(c), str(int(c))), "score": rnd(s),
                 "xyxy": [rnd(v) for v in b]}
                for b, s, c in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist())]

    def to_coco(self, image_id: int, category_ids: Sequence[int] | Mapping[int, int] | None = None,
                ) -> list[dict[str, Any]]:
        """COCO results entries ``{image_id, category_id, bbox: [x, y, w, h], score}``.

        Args:
            image_id: the dataset's id of this image.
            category_ids: contiguous class id -> dataset category id (a list indexed by class id, or a
                dict). ``None`` keeps the class ids (right for datasets whose ids are 0..nc-1).
        """
        out = []
        for (x1, y1, x2, y2), s, c in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist()):
            cat = int(category_ids[c]) if category_ids is not None else int(c)
            out.append({"image_id": int(image_id), "category_id": cat,
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)})
        return out

    def draw(self, image: np.ndarray | torch.Tensor | str | Path | None = None, *, width: int | None = None
             ) -> np.ndarray:
        """Return an RGB uint8 (H, W, 3) copy of the image with labelled boxes drawn on it.

        Uses ``torchvision.utils.draw_bounding_boxes``. ``image`` defaults to the kept original image,
        then to ``source`` when it is a file.
        """
        from torchvision.utils import draw_bounding_boxes


        if image is None:
            if self.image is not None:
                image = self.image
            elif self.source and Path(self.source).is_file():
                image = load_image(self.source)
            else:
                raise ValueError("Detections.draw() needs the image: pass it, or predict with keep_images=True.")
        if isinstance(image, (str, Path)):
            image = load_image(image)
        if isinstance(image, np.ndarray):
            tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
        else:
            tensor = image
        if tuple(tensor.shape[1:]) != tuple(self.image_hw):
            raise ValueError(f"Image is {tuple(tensor.shape[1:])} (h, w) but the detections are for {self.image_hw}.")
        side = max(self.image_hw)
        labels = [f"{n} {s:.2f}" for n, s in zip(self.class_names, self.scores.tolist())]
        colors = [_PALETTE[int(c) % len(_PALETTE)] for c in self.labels.tolist()]
        drawn = draw_bounding_boxes(tensor.to(torch.uint8), self.boxes.float(), labels=labels, colors=colors,
                                    width=width or max(2, round(side / 300)))
        return drawn.permute(1, 2, 0).numpy()

    def save_drawing(self, path: str | Path, image: np.ndarray | None = None) -> Path:
        """Draw and write the annotated image to ``path`` atomically (format from the suffix)."""
        from PIL import Image


        path = Path(path)
        drawn = self.draw(image)
        with atomic_path(path, suffix=path.suffix) as tmp:
            Image.fromarray(drawn).save(tmp, format=_pil_format(path))
        return path


def _pil_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP"}.get(suffix, "PNG")


# Ultralytics' 20-colour palette, so drawings look familiar to users of the official tools.
_PALETTE = ["#FF3838", "#FF9D97", "#FF701F", "#FFB21D", "#CFD231", "#48F90A", "#92CC17", "#3DDB86", "#1A9334",
            "#00D4BB", "#2C99A8", "#00C2FF", "#344593", "#6473FF", "#0018EC", "#8438FF", "#520085", "#CB38FF",
            "#FF95C8", "#FF37C7"]

"""``zoo.predict``: images in, :class:`Detections` out, with the official LeYOLO pre/post-processing.

The model is duck-typed so that eager LeYOLO, a fused copy or an ONNX Runtime wrapper all plug in:
it is called on a float tensor (B, 3, H, W) in [0, 1] and returns the decoded tensor (B, 4 + nc, A)
(rows 0-3 = cx, cy, w, h in input pixels, then class scores after sigmoid), or a tuple/list whose
first element is that tensor. Optional attributes: ``names`` (list or {id: name}), ``stride`` (the
largest stride, default 32; a tensor/list of strides is reduced with max).
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from tqdm import tqdm

from zoo.core.factory import create_model
from zoo.core.sizes import model_input_size
from zoo.eval.images import IMAGE_SUFFIXES, load_image, pil_to_rgb
from zoo.tasks.detection.detections import Detections
from zoo.tasks.detection.postprocess import non_max_suppression, scale_boxes
from zoo.tasks.detection.preprocess import preprocess_batch

logger = logging.getLogger(__name__)

DEFAULT_IMGSZ = 640  # ultralytics' default, for duck-typed detectors that do not say their size

ImageLike = Union[str, Path, np.ndarray, torch.Tensor, Any]  # Any: PIL.Image.Image


def resolve_sources(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand a file, a folder (its images, sorted) or a glob pattern into a list of image paths.

    Raises:
        FileNotFoundError: nothing matches.
    """
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in resolve_sources(s)]
    if not str(source).strip():  # Path("") is the current folder: an empty --source must not mean "everything here"
        raise ValueError("The image source is empty; give a file, a folder or a glob like 'imgs/*.jpg'.")
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}.")
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(str(source)):
        files = sorted(Path(p) for p in glob.glob(str(source), recursive=True)
                       if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"No images match the pattern {source!r}.")
        return files
    raise FileNotFoundError(f"Image source not found: {source} (give a file, a folder or a glob like 'imgs/*.jpg').")


def to_rgb_array(image: ImageLike) -> tuple[np.ndarray, str]:
    """One image as an (H, W, 3) uint8 RGB array plus a label for reports."""
    if isinstance(image, (str, Path)):
        return load_image(image), str(image)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"numpy images must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}.")
        return image, "<array>"
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"Tensor images must be (3, H, W) or a (B, 3, H, W) batch, got {tuple(image.shape)}.")
        if image.dtype != torch.uint8:
            if not image.is_floating_point():
                raise ValueError(f"Tensor images must be uint8 (0-255) or float (0-1), got {image.dtype}.")
            image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        return image.detach().cpu().permute(1, 2, 0).contiguous().numpy(), "<tensor>"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return pil_to_rgb(image), "<PIL>"  # the file reader's conversion (16-bit >> 8, not clipped)
    raise TypeError(f"Cannot read an image from {type(image).__name__}; pass a path, PIL image, "
                    "(H, W, 3) uint8 RGB array or (3, H, W) tensor.")


def expand_inputs(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """Flatten the accepted input forms into a list of single images (paths stay lazy)."""
    if isinstance(images, (str, Path)):
        return list(resolve_sources(images))
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return list(images.unbind(0))
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, Iterable) and not isinstance(images, (np.ndarray, torch.Tensor)) \
            and not hasattr(images, "getpixel"):  # lists, tuples, generators; not a PIL image
        out: list[ImageLike] = []
        for item in images:
            if isinstance(item, (str, Path)) and not Path(item).is_file():
                out.extend(resolve_sources(item))
            else:
                out.append(item)
        return out
    return [images]


def model_names(model: Any, num_classes: int | None = None) -> dict[int, str]:
    """Class names of a duck-typed model as {id: name} (``str(id)`` when the model has none)."""
    names = getattr(model, "names", None)
    if isinstance(names, Mapping):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, Sequence) and not isinstance(names, str):
        return {i: str(n) for i, n in enumerate(names)}
    return {i: str(i) for i in range(num_classes or 0)}


def model_stride(model: Any) -> int:
    """Largest stride of a duck-typed model (32 when it does not say)."""
    stride = getattr(model, "stride", None)
    if stride is None:
        return 32
    if isinstance(stride, torch.Tensor):
        return int(stride.max().item())
    if isinstance(stride, (list, tuple)):
        return int(max(stride))
    return int(stride)


def model_device(model: Any) -> torch.device:
    """Device of the model's first parameter (CPU for models without parameters, e.g. ONNX wrappers)."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device(getattr(model, "device", "cpu"))


def run_model(model: Callable[[torch.Tensor], Any], x: torch.Tensor) -> torch.Tensor:
    """Call the model in eval/inference mode and return the decoded (B, 4 + nc, A) tensor."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            out = model(x.to(model_device(model)))
    finally:
        if was_training:
            model.train()
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out))
    if out.ndim != 3 or out.shape[0] != x.shape[0]:
        raise ValueError(f"Model returned shape {tuple(out.shape)} for a batch of {x.shape[0]}; "
                         "expected (B, 4 + num_classes, anchors).")
    return out


def _batches(items: list[ImageLike], size: int) -> Iterator[list[ImageLike]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def predict(
    model: Callable[[torch.Tensor], Any] | str,
    images: ImageLike | Iterable[ImageLike],
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    imgsz: int | None = None,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    batch: int = 1,
    rect: bool = True,
    weights: str | Path | None = None,
    keep_images: bool = False,
    progress: bool = False,
) -> list[Detections]:
    """Detect objects in images with the official LeYOLO pre- and post-processing.

    Args:
        model: a detector (see module docstring), or a registry name built with ``weights``.
        images: a path, folder or glob; a PIL image; an (H, W, 3) uint8 RGB array; a (3, H, W) tensor
            (uint8 0-255 or float 0-1); a (B, 3, H, W) tensor / (B, H, W, 3) array; or a list of these.
        conf: confidence threshold (best class score must exceed it).
        iou: NMS IoU threshold.
        imgsz: letterbox size (square side; "rect" minimal padding keeps the short side smaller); default
            the model's own input size (its card's, e.g. 768 for leyolo-large; see ``zoo.core.sizes``).
        max_det: maximum detections per image.
        classes: keep only these class ids.
        agnostic: class-agnostic NMS.
        batch: images per forward pass. Minimal padding is used when all images of a batch share a
            shape; mixed shapes are padded to the full square (as the official predictor does).
        rect: allow minimal ("rect") padding; ``False`` always pads to ``imgsz`` x ``imgsz``.
        weights: checkpoint for a model given by name.
        keep_images: keep each original image on its ``Detections`` (for ``.draw()`` without the file).
        progress: show a tqdm bar (stderr).

    Returns:
        One :class:`Detections` per input image, in input order.
    """
    if isinstance(model, str):
        if weights is None:  # an untrained detector returns noise that looks like a result
            raise ValueError(f"zoo.predict({model!r}, ...) needs weights=PATH (a checkpoint); to run an untrained "
                             f"model on purpose pass zoo.create_model({model!r}) instead of its name.")
        model = create_model(model, checkpoint_path=weights)
        model.eval()
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    items = expand_inputs(images)
    stride = model_stride(model)
    imgsz = imgsz if imgsz is not None else model_input_size(model, default=DEFAULT_IMGSZ)
    results: list[Detections] = []
    with tqdm(total=len(items), desc="predict", unit="img", disable=not progress) as bar:
        for chunk in _batches(items, batch):
            arrays, sources = zip(*(to_rgb_array(im) for im in chunk))
            x, geometry = preprocess_batch(list(arrays), imgsz, stride=stride, rect=rect)
            out = run_model(model, x)
            names = model_names(model, out.shape[1] - 4)
            dets = non_max_suppression(out, conf=conf, iou=iou, max_det=max_det, classes=classes, agnostic=agnostic)
            for det, info, src, arr in zip(dets, geometry, sources, arrays):
                det = det.cpu()
                boxes = scale_boxes(det[:, :4], tuple(x.shape[2:]), info.orig_hw)
                results.append(Detections(boxes=boxes, scores=det[:, 4].clone(), labels=det[:, 5].long(),
                                          names=names, image_hw=info.orig_hw, source=src,
                                          image=arr if keep_images else None))
            bar.update(len(chunk))
    return results

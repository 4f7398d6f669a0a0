"""``zoo.explain``: class-activation maps of a detector, one :class:`Explanation` per image.

Why: a zoo whose detectors cannot show what they look at leaves every user to bolt a saliency library on
model by model. The CAMs themselves come from the ``grad-cam`` package (pytorch-grad-cam 1.5, the
``effzoo[explain]`` extra), never re-implemented here: KPCA-CAM (arXiv 2410.00267, the default: the first
kernel principal component of a layer's activations, gradient-free), EigenCAM (arXiv 2008.00299, the
first plain principal component) and the gradient CAMs. What this module adds is the detector side:

* the image goes through ``zoo.predict``'s letterbox, the model's own decode and NMS, so the detections
  are the ones ``zoo.predict`` reports;
* gradient CAMs differentiate the class score of the anchor behind each detection
  (:mod:`zoo.tasks.detection.explain_targets`): one map for all detections together and one per detection;
* default layers per family (:func:`default_layers`): for LeYOLO the three FPAN outputs that feed the DNiN
  head (strides 8, 16, 32), each map resized to the input and averaged (grad-cam's multi-layer mean), since
  the head reads all three and small / large objects live on different levels;
* the map is returned on the original image's pixel grid (letterbox padding cut, resized back).
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from zoo.core.errors import ZooError, close_matches
from zoo.core.sizes import model_input_size
from zoo.tasks.detection.detections import Detections
from zoo.tasks.detection.explain_targets import (AnchorScoreTarget, detection_anchors, match_boxes,
                                                 to_input_boxes, to_original_grid)
from zoo.tasks.detection.postprocess import non_max_suppression, scale_boxes
from zoo.tasks.detection.predict import (DEFAULT_IMGSZ, ImageLike, expand_inputs, model_names, model_stride,
                                         to_rgb_array)
from zoo.tasks.detection.preprocess import preprocess_batch

logger = logging.getLogger(__name__)

EXTRA_NOTE = "saliency maps need the grad-cam package: pip install 'effzoo[explain]'"


@dataclass(frozen=True)
class CamMethod:
    """One CAM of the grad-cam package: its class name there and whether it takes a target (a detection)."""

    class_name: str
    uses_target: bool
    about: str


# effzoo name -> grad-cam class. Gradient-free methods give one class-agnostic map per image; targeted
# methods give a map per detection too. Left out: AblationCAM swaps the target layer for an ablation layer,
# which the multi-layer default (and the Concat tap of Medium/Large) does not support; ScoreCAM runs one
# forward per activation channel (192 for Nano's default layers: ~50 s per map on 2 CPU cores, with its own
# unsilenceable progress bars), too slow to offer as a per-detection method here.
METHODS: dict[str, CamMethod] = {
    "kpca-cam": CamMethod("KPCA_CAM", False, "first kernel principal component of the activations (2410.00267)"),
    "eigen-cam": CamMethod("EigenCAM", False, "first principal component of the activations (2008.00299)"),
    "grad-cam": CamMethod("GradCAM", True, "activations weighted by mean gradients (1610.02391)"),
    "grad-cam++": CamMethod("GradCAMPlusPlus", True, "second-order gradient weights (1710.11063)"),
    "xgrad-cam": CamMethod("XGradCAM", True, "axiom-based gradient weights (2008.02312)"),
    "hires-cam": CamMethod("HiResCAM", True, "element-wise gradient x activation (2011.08891)"),
    "layer-cam": CamMethod("LayerCAM", True, "positive gradients x activations per position (TIP 2021)"),
    "eigen-grad-cam": CamMethod("EigenGradCAM", True, "first principal component of gradient x activation"),
}
DEFAULT_METHOD = "kpca-cam"
KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")
# KPCA-CAM's default kernel: sigmoid, grad-cam's own default. With scikit-learn's default gamma (1 / channels)
# the RBF kernel's first component lands on the background of LeYOLO's FPAN maps: on the synthetic val set its
# energy inside the true boxes is below a random map's (benchmarks/explain_faithfulness.py, README issue 18).
DEFAULT_KERNEL = "sigmoid"


class ExplainExtraMissing(ZooError, ModuleNotFoundError):
    """grad-cam is not installed; the message names the extra to install."""


@dataclass
class Explanation:
    """The saliency of one image.

    Attributes:
        map: float32 (H, W) in [0, 1] on the original image's pixels: for gradient-free methods the
            class-agnostic map, for targeted methods the map of all explained detections together (zeros
            when there is none).
        detections: the explained detections (``zoo.predict``'s, or the model's own rows at ``boxes``).
        method: the method's name (``"kpca-cam"``...).
        layers: module names the map was taken from (averaged).
        box_maps: float32 (N, H, W), one map per detection, for targeted methods (None otherwise).
        anchors: index into the decoded (4 + nc, A) output of each detection's anchor.
        seconds: wall time of the CAM computation for this image (maps only, no drawing).
        image: the original RGB uint8 (H, W, 3) image, for drawing.
    """

    map: np.ndarray
    detections: Detections
    method: str
    layers: tuple[str, ...]
    box_maps: np.ndarray | None = None
    anchors: list[int] = field(default_factory=list)
    seconds: float = 0.0
    image: np.ndarray | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.detections.source


def list_methods() -> list[str]:
    """The method names :func:`explain` accepts."""
    return list(METHODS)


def _grad_cam() -> Any:
    """The ``pytorch_grad_cam`` module, imported on first use (an optional extra)."""
    try:
        return importlib.import_module("pytorch_grad_cam")
    except ModuleNotFoundError as err:
        raise ExplainExtraMissing(EXTRA_NOTE) from err


def default_layers(model: nn.Module) -> list[str]:
    """Module names whose outputs feed the detector's head (the LeYOLO FPAN outputs, strides 8/16/32).

    Found by running one small forward and matching, by identity, the tensors the head receives with the
    tensors modules return, so it holds for every LeYOLO variant (Nano/Small ``model.24/29/34``; the
    Medium/Large taps ``model.27/32`` and the stride-32 ``Concat``, spec §2.8) and any detector with a
    ``head`` module, without a per-variant table. The outermost module wins when a container returns its
    last child's tensor.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ValueError(f"{type(model).__name__} has no 'head' module to find default layers from; pass "
                         "layers=['<module name>', ...] (see model.named_modules()).")
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # the tensor is kept so its id is never reused
    fed: list[torch.Tensor] = []
    handles = []

    def remember(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                # A container's hook runs after its children's, so it overwrites them: outermost wins.
                produced[id(output)] = (name, output)
        return hook

    head_name = next(n for n, m in model.named_modules() if m is head)
    for name, module in model.named_modules():
        if name and name != head_name and not name.startswith(head_name + "."):
            handles.append(module.register_forward_hook(remember(name)))
    handles.append(head.register_forward_pre_hook(lambda _m, args: fed.extend(args[0])))
    stride = model_stride(model)
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(torch.zeros(1, 3, 2 * stride, 2 * stride, device=device))
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    names = [produced[id(t)][0] if id(t) in produced else None for t in fed]
    if not names or any(n is None for n in names):
        raise ValueError(f"Could not tell which modules feed the head of {type(model).__name__}; pass layers=[...].")
    return [n for n in names if n is not None]


def resolve_layers(model: nn.Module, layers: str | Sequence[str] | None) -> tuple[list[str], list[nn.Module]]:
    """Module names -> modules; ``None`` gives :func:`default_layers`.

    Raises:
        ValueError: a name that is not a module of ``model``; the message lists the closest names.
    """
    if layers is None:
        names = default_layers(model)
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty; pass module names such as 'model.24' or None for the defaults.")
    modules = dict(model.named_modules())
    out = []
    for name in names:
        if name not in modules or not name:
            close = close_matches(name, [n for n in modules if n], n=5)
            hint = f" Close names: {', '.join(close)}." if close else ""
            raise ValueError(f"Unknown layer {name!r} in {type(model).__name__}.{hint} "
                             "See model.named_modules() for every name.")
        out.append(modules[name])
    return names, out


def _check_options(method: str, kernel: str, gamma: float | None) -> CamMethod:
    """The method's spec; bad names/values raise one line (before any model work)."""
    if method not in METHODS:
        close = close_matches(method, METHODS)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown explanation method {method!r}.{hint} Choose from {', '.join(METHODS)}.")
    if kernel not in KERNELS:
        raise ValueError(f"Unknown KPCA kernel {kernel!r}; choose from {', '.join(KERNELS)}.")
    if gamma is not None and not gamma > 0:
        raise ValueError(f"gamma must be a positive number (got {gamma}); None uses 1 / channels.")
    return METHODS[method]


def _make_cam(method: str, model: nn.Module, target_layers: list[nn.Module], kernel: str,
              gamma: float | None) -> Any:
    cls = getattr(_grad_cam(), METHODS[method].class_name)
    if method == "kpca-cam":
        return cls(model, target_layers, kernel=kernel, gamma=gamma)
    return cls(model, target_layers)


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for one CAM call, then put its previous state back.

    Why: scikit-learn's KernelPCA (ARPACK start vector) draws from numpy's global generator, which the
    grad-cam call does not let us pass; without this two identical calls differ by ~1e-7. Restoring the
    state leaves the caller's random stream untouched.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def explain(
    model: nn.Module,
    images: ImageLike | Iterable[ImageLike],
    *,
    method: str = DEFAULT_METHOD,
    layers: str | Sequence[str] | None = None,
    boxes: Sequence[Any] | None = None,
    kernel: str = DEFAULT_KERNEL,
    gamma: float | None = None,
    imgsz: int | None = None,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    per_detection: bool = True,
    progress: bool = False,
) -> list[Explanation]:
    """Saliency maps of a detector on images, through the grad-cam package.

    Args:
        model: an eager PyTorch detector returning the decoded (B, 4 + nc, A) tensor in eval mode (every
            LeYOLO; ONNX files have no activations to read).
        images: what ``zoo.predict`` takes (paths, folders, globs, arrays, tensors, PIL images, lists).
        method: one of :data:`METHODS` (default ``kpca-cam``).
        layers: module name(s) to read activations from (maps resized to the input and averaged);
            default :func:`default_layers` (the three FPAN outputs feeding the LeYOLO head).
        boxes: explain these boxes instead of the detections: one entry per image, a :class:`Detections`
            (its boxes and classes) or an (N, 4) xyxy array in original pixels (class = the model's best
            at the matched anchor). Each box is matched to the anchor with the highest IoU x score.
        kernel, gamma: KPCA-CAM's kernel (default sigmoid, see :data:`DEFAULT_KERNEL`) and its coefficient
            (None: scikit-learn's 1 / channels).
        imgsz: letterbox size; default the model's own input size.
        conf, iou, max_det: ``zoo.predict``'s NMS settings, so the detections are the ones it reports.
        per_detection: also compute one map per detection (targeted methods only; one backward each).
        progress: a tqdm bar on stderr.

    Returns:
        One :class:`Explanation` per image, in input order.

    Raises:
        ExplainExtraMissing: grad-cam is not installed (one line naming ``effzoo[explain]``).
        ValueError: an unknown method, kernel or layer name (with the closest names), or a model that is
            not an eager ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"explain needs an eager PyTorch model (got {type(model).__name__}); saliency maps read "
                         "intermediate activations, which an exported ONNX file does not expose.")
    spec = _check_options(method, kernel, gamma)
    _grad_cam()  # the missing extra is one line, before any model work
    names, modules = resolve_layers(model, layers)
    items = expand_inputs(images)
    if boxes is not None and len(boxes) != len(items):
        raise ValueError(f"boxes has {len(boxes)} entries for {len(items)} images; give one per image.")
    imgsz = imgsz if imgsz is not None else model_input_size(model, default=DEFAULT_IMGSZ)
    was_training = model.training
    frozen = [p for p in model.parameters() if not p.requires_grad]
    if spec.uses_target:  # a frozen copy (e.g. deploy_copy()) has no graph to differentiate: thaw it meanwhile
        for p in frozen:
            p.requires_grad_(True)
    model.eval()
    cam = _make_cam(method, model, modules, kernel, gamma)
    results = []
    try:
        for i, item in enumerate(tqdm(items, desc=f"explain {method}", unit="img", disable=not progress)):
            results.append(_explain_one(model, cam, item, spec, names, imgsz, conf, iou, max_det,
                                        None if boxes is None else boxes[i], per_detection))
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # grad-cam's backward passes leave .grad on the user's parameters
        for p in frozen:
            p.requires_grad_(False)
        model.train(was_training)
    return results


def _explain_one(model: nn.Module, cam: Any, item: ImageLike, spec: CamMethod, names: list[str], imgsz: int,
                 conf: float, iou: float, max_det: int, given: Any, per_detection: bool) -> Explanation:
    array, source = to_rgb_array(item)
    x, (info,) = preprocess_batch([array], imgsz, stride=model_stride(model))
    x = x.to(next(model.parameters()).device)
    with torch.no_grad(), _positions_checked(cam, spec):
        out = model(x)
    decoded = (out[0] if isinstance(out, (tuple, list)) else out)[0]  # (4 + nc, A)
    if given is None:
        dets = non_max_suppression(decoded[None], conf=conf, iou=iou, max_det=max_det)[0].cpu()
        anchors = detection_anchors(decoded, dets)
    else:
        given_boxes, given_classes = _given(given)
        anchors, _, dets = match_boxes(decoded, to_input_boxes(given_boxes, info), given_classes)
    classes = [int(c) for c in dets[:, 5].tolist()]
    detections = Detections(boxes=scale_boxes(dets[:, :4], tuple(x.shape[2:]), info.orig_hw),
                            scores=dets[:, 4].clone(), labels=dets[:, 5].long(),
                            names=model_names(model, decoded.shape[0] - 4), image_hw=info.orig_hw, source=source)
    start = time.perf_counter()
    with _numpy_seed(0):
        union = cam(x, targets=[AnchorScoreTarget(anchors, classes)])[0]
        box_maps = None
        if spec.uses_target and per_detection:
            box_maps = np.stack([to_original_grid(cam(x, targets=[AnchorScoreTarget([a], [c])])[0], info)
                                 for a, c in zip(anchors, classes)]) if anchors else \
                np.zeros((0, *info.orig_hw), np.float32)
    if spec.uses_target and not anchors:
        saliency = np.zeros(info.orig_hw, np.float32)  # nothing detected: nothing to explain
    else:
        saliency = to_original_grid(union, info)
    seconds = time.perf_counter() - start
    return Explanation(map=saliency, detections=detections, method=_name_of(spec), layers=tuple(names),
                       box_maps=box_maps, anchors=anchors, seconds=seconds, image=array)


# KPCA-CAM builds an (HW x HW) float64 kernel matrix per layer (scikit-learn KernelPCA, plus copies while
# centring): 10,000 positions is ~0.8 GB per copy, the most that keeps a run under a few GB. LeYOLO's stride-8
# level at 640 x 640 has 6,400; at Large's 768, 9,216.
MAX_KPCA_POSITIONS = 10_000


@contextlib.contextmanager
def _positions_checked(cam: Any, spec: CamMethod) -> Iterator[None]:
    """Refuse, before KernelPCA allocates it, a kernel matrix too large for memory (kpca-cam only)."""
    sizes: list[tuple[int, int]] = []
    handles = [layer.register_forward_hook(lambda _m, _i, o: sizes.append(tuple(o.shape[-2:])))
               for layer in cam.target_layers] if spec.class_name == "KPCA_CAM" else []
    try:
        yield
    finally:
        for h in handles:
            h.remove()
    for h, w in sizes:
        if h * w > MAX_KPCA_POSITIONS:
            raise ValueError(f"kpca-cam on a {h}x{w} activation map needs a {h * w}x{h * w} kernel matrix "
                             f"(over {MAX_KPCA_POSITIONS} positions, too large for memory); use a coarser layer "
                             "(stride >= 8) or a smaller --imgsz.")


def _name_of(spec: CamMethod) -> str:
    return next(k for k, v in METHODS.items() if v is spec)


def _given(given: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """User boxes for one image -> (N, 4) xyxy original pixels and their classes (None: the model's best)."""
    if isinstance(given, Detections):
        return given.boxes.float(), given.labels.long()
    arr = torch.as_tensor(np.asarray(given, dtype=np.float32))
    if arr.ndim == 1 and arr.numel() == 4:
        arr = arr.view(1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes for one image must be (N, 4) xyxy pixels or a Detections (got shape {tuple(arr.shape)}).")
    return arr, None

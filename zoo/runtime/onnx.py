"""``OnnxModel``: run an exported file with onnxruntime, as a drop-in for the PyTorch model.

It is callable like the eager model, on a torch tensor (or numpy array), and returns a torch tensor:
(B, 3, H, W) float images -> decoded (B, 4 + nc, A) for detectors; (B, T) int64 tokens -> (B, T, V)
logits for language models. It exposes ``names``, ``stride`` and ``imgsz`` from the file's metadata, so
``zoo.predict``, ``zoo.tasks.detection.val`` and ``zoo.eval.lm.evaluate_perplexity`` measure an export with the same
code as the PyTorch model. End-to-end files (exported with NMS) return final detections instead; use
:meth:`OnnxModel.detect`.

Files are checked before a session is built, so that a broken file gives one clear line instead of a
protobuf or onnxruntime stack trace: missing, unreadable, not ONNX, no graph, or an opset outside what
effzoo exports (>= 17) and the installed onnxruntime runs.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from torch import Tensor

from zoo.core.errors import OnnxModelError
from zoo.runtime.metadata import MIN_OPSET, decode_metadata, opset_of

logger = logging.getLogger(__name__)

# What an end-to-end (NMS inside) detector file returns, every image padded to max_det rows; padding rows
# have class -1 (zoo.tasks.detection.nms_graph writes them).
END_TO_END_OUTPUTS = ("boxes", "scores", "classes")

_NP_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU."""
    have = available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


def load_checked(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ONNX file and check that effzoo can run it; raises ``OnnxModelError`` / ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as err:
        raise OnnxModelError(f"{path} is not a readable ONNX file ({type(err).__name__}: {err}); the file is "
                             "corrupt or truncated: export it again (zoo export MODEL --out FILE).") from err
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise OnnxModelError(f"{path} holds no ONNX graph (corrupt, truncated or not an ONNX model); export it again "
                             "(zoo export MODEL --out FILE).")
    opset = opset_of(model)
    if opset is None or opset < MIN_OPSET:
        raise OnnxModelError(f"{path} uses ONNX opset {opset}; effzoo runs opset {MIN_OPSET} or newer: re-export it "
                             f"with --opset {MIN_OPSET} or higher.")
    return model


class OnnxModel:
    """An exported effzoo ONNX file, run with onnxruntime.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers in priority order (default: CUDA when available,
            then CPU).
        threads: intra-op threads (default: onnxruntime's choice, the physical cores).
        session_options: a prepared ``onnxruntime.SessionOptions`` (overrides ``threads``).

    Attributes:
        metadata: the decoded effzoo metadata (empty for files other tools made).
        task, target, names, stride, imgsz, seq_len: read from the metadata where present.
        end_to_end: the file has NMS inside and outputs (boxes, scores, classes).
        providers: the providers the session actually uses.

    Raises:
        FileNotFoundError: no file at ``path``.
        OnnxModelError: the file is not a runnable ONNX model (see module docstring).
    """

    def __init__(self, path: str | os.PathLike[str], providers: Sequence[str] | None = None, *,
                 threads: int | None = None, session_options: Any = None) -> None:
        self.path = Path(path)
        self._start(load_checked(self.path), providers, threads, session_options)

    @classmethod
    def from_proto(cls, model: onnx.ModelProto, providers: Sequence[str] | None = None, *, name: str = "<memory>",
                   threads: int | None = None) -> OnnxModel:
        """Run an in-memory model (the exporter checks parity before anything is written)."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self._start(model, providers, threads, None)
        return self

    def _start(self, model: onnx.ModelProto, providers: Sequence[str] | None, threads: int | None,
               options: Any) -> None:
        import onnxruntime as ort

        self.opset = opset_of(model)
        self.metadata = decode_metadata({p.key: p.value for p in model.metadata_props})
        if options is None:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: fp16/int8 graphs make onnxruntime chatty
            if threads:
                options.intra_op_num_threads = int(threads)
                options.inter_op_num_threads = 1
        wanted = list(providers) if providers is not None else default_providers()
        missing = [p for p in wanted if p not in available_providers()]
        if missing:
            raise OnnxModelError(f"onnxruntime provider(s) {', '.join(missing)} not available in this build (have "
                                 f"{', '.join(available_providers())}); install onnxruntime-gpu for CUDA.")
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=wanted)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            hint = ""
            if "opset" in first.lower():  # a file stamped with an opset newer than this onnxruntime knows
                hint = (f" Re-export it with --opset {MIN_OPSET} (opset {self.opset} in the file), or upgrade "
                        "onnxruntime.")
            raise OnnxModelError(f"onnxruntime cannot run {self.path}: {first}{hint}") from err
        self.providers = self.session.get_providers()
        self._inputs = self.session.get_inputs()
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.input_name = self._inputs[0].name
        self.input_dtype = _NP_DTYPES.get(self._inputs[0].type, np.float32)
        self.input_shape = tuple(self._inputs[0].shape)
        self.end_to_end = tuple(self._outputs[:3]) == END_TO_END_OUTPUTS
        self._padded_once = False

    # -- metadata ---------------------------------------------------------------------------------
    @property
    def takes_images(self) -> bool:
        """The graph takes a float (B, 3, H, W) image batch (a detector), not integer tokens."""
        return len(self.input_shape) == 4 and not np.issubdtype(self.input_dtype, np.integer)

    @property
    def task(self) -> str:
        """The task recorded by the exporter; for files other tools made, guessed from the input."""
        if "task" in self.metadata:
            return str(self.metadata["task"])
        return "detection" if self.takes_images else "language-modeling"

    @property
    def target(self) -> str | None:
        return self.metadata.get("target")

    @property
    def names(self) -> dict[int, str]:
        names = self.metadata.get("names")
        return dict(names) if isinstance(names, dict) else {}

    @property
    def stride(self) -> int:
        stride = self.metadata.get("stride", 32)
        if isinstance(stride, str):  # ultralytics writes "32"
            try:
                return int(stride)
            except ValueError:
                return 32
        return int(max(stride)) if isinstance(stride, (list, tuple)) else int(stride)

    @property
    def imgsz(self) -> tuple[int, int] | None:
        """(height, width) the file was exported (and checked) at; None for language models."""
        size = self.metadata.get("imgsz")
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return int(size[0]), int(size[1])
        if self.takes_images and all(isinstance(d, int) for d in self.input_shape[2:]):
            return int(self.input_shape[2]), int(self.input_shape[3])
        return None

    @property
    def input_size(self) -> int | None:
        """The size the file runs at by default (``zoo.core.sizes``): a fixed-size detector's own side, else the
        exporting model's input size recorded in the metadata, else the exported sequence length."""
        if self.takes_images and self.fixed_hw:
            return max(int(self.input_shape[2]), int(self.input_shape[3]))
        size = self.metadata.get("input_size")
        return size if isinstance(size, int) else self.seq_len

    @property
    def fixed_hw(self) -> bool:
        """True when the graph only accepts ``imgsz`` inputs (not exported with ``dynamic_hw``)."""
        return len(self.input_shape) == 4 and all(isinstance(d, int) for d in self.input_shape[2:])

    @property
    def seq_len(self) -> int | None:
        value = self.metadata.get("seq_len")
        return int(value) if value is not None else None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # outputs are returned on the CPU whatever provider ran them

    # -- running -------------------------------------------------------------------------------------
    def _feed(self, x: Any) -> dict[str, np.ndarray]:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        arr = np.ascontiguousarray(arr, dtype=self.input_dtype)
        expected = self.input_shape
        if self.takes_images and self.fixed_hw and arr.ndim == 4:
            arr = self._pad_to_fixed(arr)
        if arr.ndim != len(expected) or any(isinstance(d, int) and d != s for d, s in zip(expected, arr.shape)):
            shape = "x".join(str(d) if isinstance(d, int) else "?" for d in expected)
            hint = ""
            if self.takes_images and self.fixed_hw:
                hint = (" This file was exported for fixed-size images: use a smaller imgsz, or re-export with "
                        "--dynamic-hw.")
            raise ValueError(f"{self.path.name} expects {self.input_name} of shape {shape} "
                             f"(got {'x'.join(map(str, arr.shape))}).{hint}")
        return {self.input_name: arr}

    def _pad_to_fixed(self, arr: np.ndarray) -> np.ndarray:
        """Pad a smaller (B, 3, h, w) image batch at the bottom/right to the file's fixed size.

        Why: ``zoo.predict`` letterboxes with minimal ("rect") padding, e.g. bus.jpg -> 640x480, but a
        fixed-size file only takes 640x640. Padding at the bottom/right with the letterbox grey keeps the
        image where it is, so box coordinates (and ``scale_boxes``) are unchanged; detections can differ
        from the eager model's only through the extra grey border, as with any fixed-size export.
        """
        H, W = int(self.input_shape[2]), int(self.input_shape[3])
        h, w = arr.shape[2], arr.shape[3]
        if (h, w) == (H, W) or h > H or w > W:
            return arr
        if not self._padded_once:
            logger.info("%s takes %dx%d inputs: padding %dx%d batches at the bottom/right with letterbox grey",
                        self.path.name, H, W, h, w)
            self._padded_once = True
        grey = np.asarray(114 / 255, dtype=arr.dtype)
        out = np.full((arr.shape[0], arr.shape[1], H, W), grey, dtype=arr.dtype)
        out[:, :, :h, :w] = arr
        return out

    def run(self, x: Any) -> dict[str, np.ndarray]:
        """Every graph output for input ``x``, as numpy arrays keyed by output name."""
        return dict(zip(self._outputs, self.session.run(None, self._feed(x))))

    def __call__(self, x: Any) -> torch.Tensor:
        """Decoded detections (B, 4 + nc, A) or logits (B, T, V), float32 on the CPU.

        ``x``: (B, 3, H, W) float images in [0, 1] or (B, T) int64 tokens, torch or numpy. A fixed-size
        detector file accepts smaller images too (padded, see ``_pad_to_fixed``).
        """
        if "output0" in self._outputs:  # detectors; also end-to-end graphs while the exporter checks them
            name = "output0"
        elif self.end_to_end:
            raise OnnxModelError(f"{self.path.name} has NMS built in (exported with --nms): its outputs are final "
                                 "detections; use OnnxModel.detect(x), or export without --nms for zoo predict/val.")
        else:
            name = self._outputs[0]
        out = self.session.run([name], self._feed(x))[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def detect(self, x: Any) -> list[torch.Tensor]:
        """End-to-end files: one (N, 6) tensor per image ``x1, y1, x2, y2, score, class`` (input pixels)."""
        if not self.end_to_end:
            raise OnnxModelError(f"{self.path.name} has no NMS inside: call the model and run "
                                 "zoo.tasks.detection.postprocess.non_max_suppression, or export with --nms.")
        out = self.run(x)
        return unpad(*(torch.from_numpy(np.asarray(out[k])) for k in ("boxes", "scores", "classes")))

    def __repr__(self) -> str:
        return (f"OnnxModel({str(self.path)!r}, model={self.metadata.get('model')!r}, target={self.target!r}, "
                f"providers={self.providers})")


def unpad(boxes: Tensor, scores: Tensor, classes: Tensor) -> list[Tensor]:
    """Padded end-to-end outputs -> one (N, 6) tensor per image ``x1, y1, x2, y2, score, class``.

    The same layout as ``zoo.tasks.detection.postprocess.non_max_suppression``, so the two compare directly.
    """
    out = []
    for bx, sc, cl in zip(boxes, scores, classes):
        valid = cl >= 0
        out.append(torch.cat([bx[valid].float(), sc[valid, None].float(), cl[valid, None].float()], 1))
    return out

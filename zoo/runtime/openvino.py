"""``OpenVinoModel``: run an exported OpenVINO IR (``.xml`` + ``.bin``) as a drop-in for the PyTorch model.

The same interface as :class:`zoo.runtime.onnx.OnnxModel` (callable on a torch tensor or numpy array,
``names`` / ``stride`` / ``imgsz`` / ``input_size`` from the file's metadata, ``run`` / ``detect``), so
``zoo predict``, ``zoo val``, ``zoo eval-lm`` and ``zoo bench`` measure an IR with the code that measures
the PyTorch model and the ONNX file. It subclasses ``OnnxModel`` for that metadata and input handling only
and swaps the session for an OpenVINO compiled model.

Metadata: the exporter (:mod:`zoo.export.openvino_export`) stores the effzoo keys in the IR's
``rt_info`` under ``effzoo`` (strings, as in ONNX ``metadata_props``).

Precision: the CPU plugin runs float32 graphs in bfloat16 by default where the CPU has native bf16
(AVX512_BF16 or AMX; this machine's AMD EPYC has AVX512_BF16), which moves outputs by ~1e-2. The
wrapper asks for float32 (``inference_precision="f32"``) unless told otherwise, so a file computes what
its parity check measured; ``inference_precision=None`` keeps the plugin's choice (what a plain
``openvino.compile_model`` user gets; ``benchmarks/deploy_latency.py`` times both).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.errors import MissingExtraError, OnnxModelError
from zoo.runtime.metadata import decode_metadata
from zoo.runtime.onnx import END_TO_END_OUTPUTS, OnnxModel

logger = logging.getLogger(__name__)

EXTRA_NOTE = "OpenVINO is not installed: pip install effzoo[openvino] (openvino and nncf)"
RT_SECTION = "effzoo"  # rt_info section holding the effzoo metadata strings
_NP_DTYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32, "u8": np.uint8}


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> Any:
    """The ``openvino`` module, or ``MissingExtraError`` (a ``ModuleNotFoundError``) naming the extra."""
    if not openvino_available():
        raise MissingExtraError(EXTRA_NOTE)
    import openvino  # deferred: optional extra, heavy import

    return openvino


def bin_path(xml: str | os.PathLike[str]) -> Path:
    """The weights file that belongs to IR ``xml`` (same stem, ``.bin``)."""
    return Path(xml).with_suffix(".bin")


def read_ir(path: str | os.PathLike[str]) -> Any:
    """Read an IR after checking both of its files; one line for each way it can be broken.

    Raises:
        FileNotFoundError: the ``.xml`` or its ``.bin`` is missing (the message names the file).
        OnnxModelError: OpenVINO cannot read them (corrupt, truncated, mismatched pair).
    """
    ov = require_openvino()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenVINO IR not found: {path}")
    weights = bin_path(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{path} has no weights file: {weights} is missing (an IR is an .xml and a .bin "
                                "with the same name; copy both, or export again with zoo export --target openvino).")
    try:
        return ov.Core().read_model(str(path), str(weights))
    except Exception as err:  # OpenVINO raises RuntimeError subclasses with multi-line C++ messages
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OnnxModelError(f"OpenVINO cannot read {path}: {first} (the IR is corrupt or its .xml/.bin do not "
                             "belong together); export it again.") from err


def ir_metadata(model: Any) -> dict[str, Any]:
    """The decoded effzoo metadata of an ``openvino.Model`` (empty for IRs other tools made)."""
    info = model.get_rt_info()
    if RT_SECTION not in info:
        return {}
    section = info[RT_SECTION]
    keys = list(section.keys()) if hasattr(section, "keys") else list(section.astype(dict))
    return decode_metadata({str(k): model.get_rt_info([RT_SECTION, str(k)]).astype(str) for k in keys})


def _dims(port: Any) -> tuple[int | str, ...]:
    shape = port.get_partial_shape()
    return tuple(d.get_length() if d.is_static else f"d{i}" for i, d in enumerate(shape))


class _Session:
    """The piece of ``onnxruntime.InferenceSession`` that ``OnnxModel`` calls: ``run(names, feed)``."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.names = [o.get_any_name() for o in compiled.outputs]

    def run(self, names: Sequence[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.request.infer(feed)
        wanted = self.names if names is None else list(names)
        return [np.array(self.request.get_output_tensor(self.names.index(n)).data) for n in wanted]


class OpenVinoModel(OnnxModel):
    """An exported effzoo OpenVINO IR, run on the OpenVINO CPU plugin (see module docstring).

    Args:
        path: the ``.xml`` file (its ``.bin`` beside it).
        device: OpenVINO device name (default ``CPU``).
        threads: inference threads (default: the plugin's choice).
        inference_precision: ``"f32"`` (default: what the parity check measured), ``"bf16"``, or None
            for the plugin's default.
        latency_hint: compile for batch-1 latency (OpenVINO's ``PERFORMANCE_HINT=LATENCY``).

    Raises:
        MissingExtraError: openvino is not installed (names the extra).
        FileNotFoundError / OnnxModelError: see :func:`read_ir`.
    """

    def __init__(self, path: str | os.PathLike[str], providers: Sequence[str] | None = None, *,
                 device: str = "CPU", threads: int | None = None, inference_precision: str | None = "f32",
                 latency_hint: bool = True) -> None:
        if providers is not None:  # callers that pass onnxruntime providers get a clear answer
            raise OnnxModelError(f"{path} is an OpenVINO IR: it runs on OpenVINO devices, not onnxruntime providers "
                                 f"({', '.join(providers)}).")
        self.path = Path(path)
        ov_model = read_ir(self.path)
        self._start_ov(ov_model, device, threads, inference_precision, latency_hint)

    @classmethod
    def from_model(cls, ov_model: Any, *, name: str = "<memory>", device: str = "CPU", threads: int | None = None,
                   inference_precision: str | None = "f32") -> OpenVinoModel:
        """Run an in-memory ``openvino.Model`` (the exporter checks it before anything is written)."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self._start_ov(ov_model, device, threads, inference_precision, True)
        return self

    def _start_ov(self, ov_model: Any, device: str, threads: int | None, precision: str | None,
                  latency_hint: bool) -> None:
        ov = require_openvino()
        config: dict[str, Any] = {}
        if latency_hint:
            config["PERFORMANCE_HINT"] = "LATENCY"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            compiled = ov.Core().compile_model(ov_model, device, config)
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OnnxModelError(f"OpenVINO cannot compile {self.path} for {device}: {first}") from err
        self.opset = None
        self.metadata = ir_metadata(ov_model)
        self.session = _Session(compiled)
        self.providers = [f"OpenVINO:{device}"]
        self._outputs = list(self.session.names)
        port = ov_model.inputs[0]
        self.input_name = port.get_any_name()
        self.input_dtype = _NP_DTYPES.get(port.get_element_type().get_type_name(), np.float32)
        self.input_shape = _dims(port)
        self.end_to_end = tuple(self._outputs[:3]) == END_TO_END_OUTPUTS
        self._padded_once = False
        self.inference_precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def __repr__(self) -> str:
        return (f"OpenVinoModel({str(self.path)!r}, model={self.metadata.get('model')!r}, target={self.target!r}, "
                f"precision={self.inference_precision})")

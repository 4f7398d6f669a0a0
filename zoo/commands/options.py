"""The CLI's shared vocabulary: one flag for one thing in every subcommand, and the renamed old spellings.

``--out`` is where results are written, ``--batch`` is inputs per forward pass, ``--runtime`` is what runs
the model (``torch`` or ``onnx``), ``--evaluator`` is the COCO evaluator's implementation, and the size of
an input is ``--imgsz`` for detectors and ``--seq-len`` for language models. Spellings used before this
vocabulary (``--save``, ``--batch-size``, ``--backend``) still parse for one release, hidden from
``--help``, with a one-line deprecation warning on stderr.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from zoo.core.registry import ModelCard
from zoo.tasks import get_task

RUNTIMES = ("torch", "onnx", "openvino")
EVALUATORS = ("effzoo", "faster-coco-eval", "pycocotools")


class _Deprecated(argparse.Action):
    """Stores into the new flag's ``dest`` and says once, on stderr, which flag to use instead."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden, warned spelling of ``new`` (same ``dest``, same type/choices)."""
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, help=argparse.SUPPRESS, **kwargs)


def add_runtime_flag(parser: argparse.ArgumentParser) -> None:
    """``--runtime torch|onnx|openvino``: what runs the model (default: what the --weights file's suffix implies)."""
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="run the model with PyTorch, onnxruntime or OpenVINO (default: onnx for a .onnx and "
                             "openvino for a .xml --weights file, else torch)")


def add_nms_flags(parser: argparse.ArgumentParser, *, conf: float) -> None:
    """``--conf``, ``--iou``, ``--max-det``: the detector post-processing (``conf`` = this command's default)."""
    parser.add_argument("--conf", type=float, default=conf, help=f"confidence threshold (default {conf:g})")
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    parser.add_argument("--max-det", type=int, default=300, help="max detections per image (default 300)")


def size_for(card: ModelCard, *, imgsz: int | None = None, seq_len: int | None = None) -> int | None:
    """The size flag the model's task takes (None when unset); the other task's flag is an error.

    Raises:
        ValueError: ``--seq-len`` for a detector or ``--imgsz`` for a language model, or a size < 1.
    """
    task = get_task(card.task)
    given = {"imgsz": imgsz, "seq_len": seq_len}
    flag = {k: "--" + k.replace("_", "-") for k in given}
    for key, value in given.items():
        if value is not None and key != task.size_arg:
            raise ValueError(f"{card.name} is a {task.title}: pass {flag[task.size_arg]}, not {flag[key]}.")
    size = given[task.size_arg]
    if size is not None and size < 1:
        raise ValueError(f"{flag[task.size_arg]} must be a positive number of {task.size_unit} (got {size}).")
    return size

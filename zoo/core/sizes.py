"""The one input-size rule: a size left unset means the model's own size, everywhere.

``imgsz=None`` / ``seq_len=None`` in predict, val, export, flops and training validation all resolve
here, so ``zoo.predict(create_model("leyolo-large"), ...)`` runs at the card's 768, not a global 640.
The model's own size is, in order: its ``input_size`` (the card's default, or the size a loaded checkpoint
was trained at: ``create_model`` sets it from the file), an exported file's ``imgsz``, its registry card.
"""
from __future__ import annotations

from typing import Any

from zoo.core.registry import get_card, list_models


def model_input_size(model: Any, default: int | None = None) -> int:
    """The size ``model`` runs at when the caller gives none (see the module docstring).

    Args:
        model: a registry model, an exported-file runtime, or any object with ``input_size``.
        default: used for duck-typed models that say nothing about their size (e.g. a bare callable).

    Raises:
        ValueError: the model has no size and no ``default`` was given.
    """
    size = getattr(model, "input_size", None)
    if size is None:
        hw = getattr(model, "imgsz", None)
        if isinstance(hw, (tuple, list)) and len(hw) == 2:
            size = max(int(hw[0]), int(hw[1]))
        elif isinstance(hw, int):
            size = hw
    name = getattr(model, "model_name", None)
    if size is None and isinstance(name, str) and name in list_models():
        size = get_card(name).input_size
    if size is None:
        size = getattr(model, "seq_len", None)
    if size is None:
        if default is None:
            raise ValueError(f"{type(model).__name__} does not say its input size; pass imgsz / seq_len.")
        return int(default)
    return int(size)

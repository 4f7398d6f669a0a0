"""``create_model``: the one way to build a registered model, with or without weights.

timm's ``create_model`` conventions: a name, then ``pretrained`` / ``checkpoint_path`` / builder
overrides, ``None`` overrides dropped so unset CLI flags fall through to the variant's defaults, weights
loaded strictly after the model is built. Nothing is ever downloaded: ``pretrained=True`` looks in the
local weights folder and says which file to put where. What a checkpoint implies (class count, a PI-GPT's
whole config) is applied, and an override that contradicts it is an error, never silently overridden.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from zoo.core.checkpoint import load_into, read_checkpoint
from zoo.core.errors import CheckpointError, ZooError
from zoo.core.registry import get_card

WEIGHTS_ENV = "EFFZOO_WEIGHTS"


def weights_dir() -> Path:
    """The local weights folder: ``$EFFZOO_WEIGHTS``, else ``~/.cache/effzoo/weights``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "effzoo" / "weights"


def pretrained_path(name: str) -> Path:
    """Where ``pretrained=True`` looks for ``name``'s weights; raises with instructions when missing."""
    card = get_card(name)
    if not card.weights_file:
        raise ZooError(f"Model {name!r} has no released weights; train it (zoo train {name}) or pass checkpoint_path.")
    folder = weights_dir()
    stem = Path(card.weights_file).stem
    candidates = [folder / card.weights_file, folder / f"{name}.safetensors", folder / f"{stem}.safetensors"]
    for path in candidates:
        if path.is_file():
            return path
    raise ZooError(
        f"No weights for {name!r} in {folder}: put the released file {card.weights_file!r} there "
        f"(or a converted {name}.safetensors), or set ${WEIGHTS_ENV} to the folder that holds it. "
        "effzoo never downloads weights."
    )


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: registry name (see ``list_models``).
        pretrained: load the released weights from the local weights folder (never downloads).
        checkpoint_path: an official checkpoint (LeYOLO ``.pt``) or an effzoo ``.safetensors`` file.
        **overrides: builder keyword arguments (``num_classes=20``, ``context_length=256``); ``None``
            values are dropped so unset CLI flags fall through to the variant's defaults.

    Returns:
        The model in eval mode when weights were loaded, else freshly initialised in train mode.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the closest names).
        CheckpointError: the checkpoint is unreadable, unsafe, or does not fit the model.
    """
    card = get_card(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if pretrained and checkpoint_path is not None:
        raise ValueError("Pass either pretrained=True or checkpoint_path, not both.")
    path = pretrained_path(name) if pretrained else checkpoint_path
    if path is None:
        return card.builder(**overrides)

    ckpt = read_checkpoint(path, card)
    recorded = ckpt.metadata.get("model")
    if recorded and recorded != card.name and recorded not in card.extra.get("weights_compatible", ()):
        # Same shapes do not mean same model (sm-g and sm-r differ only in their activation).
        raise ZooError(f"Checkpoint {os.fspath(path)!r} holds weights of {recorded!r}, not {card.name!r}; "
                       f"use create_model({recorded!r}, checkpoint_path=...).")
    for key, value in ckpt.implied_overrides.items():
        if key in overrides and overrides[key] != value:
            raise ZooError(
                f"Checkpoint {os.fspath(path)!r} was trained with {key}={value!r} but {key}={overrides[key]!r} "
                "was requested; drop the override or load the weights into a fresh model yourself."
            )
        overrides[key] = value
    try:
        model = card.builder(**overrides)
    except (TypeError, ValueError) as err:
        if not ckpt.implied_overrides:
            raise
        # the file's recorded overrides are data like any other: a bad one is the file's fault, said in one line
        raise CheckpointError(f"Checkpoint {os.fspath(path)!r} records builder overrides that {card.name} does not "
                              f"accept ({err}); re-create the file with zoo convert.") from err
    load_into(model, ckpt, source=os.fspath(path))
    size = ckpt.metadata.get("input_size")
    if isinstance(size, int) and hasattr(model, "input_size"):
        model.input_size = size  # the size these weights were trained/validated at (zoo.core.sizes)
    return model.eval()

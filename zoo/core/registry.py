"""The model registry: every family registers named builders here; ``create_model`` is the one way in.

Follows timm's conventions (``@register_model`` at import, ``list_models`` with fnmatch wildcards,
``create_model(name, pretrained=..., checkpoint_path=..., **overrides)``) with two effzoo rules:
a duplicate name is an error, and an unknown name lists the closest registered names. Nothing is ever
downloaded: ``pretrained=True`` looks in the local weights folder and says which file to put where.
"""
from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.core.errors import UnknownModelError, ZooError, did_you_mean

logger = logging.getLogger(__name__)

# Families register themselves when their ``variants`` module is imported. Listed here (not discovered)
# so that import order, and therefore the registry's content, is the same on every machine.
_FAMILY_MODULES: tuple[str, ...] = ("zoo.models.leyolo.variants", "zoo.models.pi_transformer.variants")

WEIGHTS_ENV = "EFFZOO_WEIGHTS"


@dataclass(frozen=True)
class ModelCard:
    """What the zoo knows about a registered model, apart from its weights.

    Attributes:
        name: registry name, lowercase and hyphenated (``leyolo-nano``).
        family: family id (``leyolo``, ``pi_transformer``).
        task: ``detection`` or ``language-modeling``.
        builder: the registered builder, called with keyword overrides only.
        input_size: default input size (square image side in pixels, or tokens for LMs).
        input_sizes: every size the paper reports for this model.
        paper: published numbers keyed by metric, e.g. ``{"gflops@320": 0.66, "map50-95@320": 25.2}``.
        source: where ``paper`` comes from (paper table, README, spec section).
        weights_file: file name that ``pretrained=True`` looks for in the weights folder.
        description: one line saying what makes this variant different.
        extra: family-specific metadata (e.g. class names, released-checkpoint format).
    """

    name: str
    family: str
    task: str
    builder: Callable[..., nn.Module]
    input_size: int
    input_sizes: tuple[int, ...] = ()
    paper: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    weights_file: str | None = None
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Parameter count of the default configuration (built on the meta device, so it is instant)."""
        return _count_params_meta(self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view of the card (``zoo info --json``)."""
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "input_size": self.input_size,
            "input_sizes": list(self.input_sizes or (self.input_size,)),
            "n_params": self.n_params,
            "paper": dict(self.paper),
            "source": self.source,
            "weights_file": self.weights_file,
            "description": self.description,
        }


_REGISTRY: dict[str, ModelCard] = {}
_PARAM_CACHE: dict[str, int] = {}
_loaded = False


def register_model(
    name: str,
    *,
    family: str,
    task: str,
    input_size: int,
    input_sizes: tuple[int, ...] = (),
    paper: Mapping[str, float] | None = None,
    source: str = "",
    weights_file: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that records a builder under ``name``; a duplicate name raises ``ValueError``."""
    if name != name.lower() or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", name):
        raise ValueError(f"Model name {name!r} must be lowercase letters, digits, '-' and '.'.")

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"Model {name!r} is already registered by {_REGISTRY[name].builder.__module__}.")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ModelCard(
            name=name,
            family=family,
            task=task,
            builder=fn,
            input_size=input_size,
            input_sizes=tuple(input_sizes) or (input_size,),
            paper=dict(paper or {}),
            source=source,
            weights_file=weights_file,
            description=doc[0] if doc else "",
            extra=dict(extra or {}),
        )
        return fn

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a family not written yet must not break the others
            if err.name is None or not module.startswith(err.name):
                raise
            logger.debug("model family %s not available: %s", module, err)


def _natural_key(name: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None, *, family: str | None = None) -> list[str]:
    """Registered names matching an fnmatch ``pattern`` (e.g. ``'leyolo-*'``), naturally sorted."""
    _ensure_loaded()
    names = [n for n, c in _REGISTRY.items() if family is None or c.family == family]
    if pattern:
        names = fnmatch.filter(names, pattern)
    return sorted(names, key=_natural_key)


def get_card(name: str) -> ModelCard:
    """The card of ``name``; an unknown name raises ``UnknownModelError`` listing the closest names."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        family = name.split("-")[0]
        hint = f" See zoo.list_models('{family}-*')." if any(n.startswith(family + "-") for n in _REGISTRY) else \
            " See zoo.list_models()."
        raise UnknownModelError(f"Unknown model {name!r}.{did_you_mean(name, _REGISTRY)}{hint}") from None


def model_info(name: str) -> ModelCard:
    """The model's card: family, input size, published GFLOPs / accuracy with source, param count."""
    return get_card(name)


def _count_params_meta(name: str) -> int:
    if name not in _PARAM_CACHE:
        with torch.device("meta"):
            model = get_card(name).builder()
        _PARAM_CACHE[name] = sum(p.numel() for p in model.parameters())
    return _PARAM_CACHE[name]


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

    from zoo.core.checkpoint import load_into, read_checkpoint  # deferred: keeps `import zoo` light

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
    model = card.builder(**overrides)
    load_into(model, ckpt, source=os.fspath(path))
    return model.eval()

"""The model registry: every family registers named builders here at import; a leaf module.

Follows timm's leaf registry (``@register_model`` at import, ``list_models`` with fnmatch wildcards) with
two effzoo rules: a duplicate name is an error, and an unknown name lists the closest registered names.
It imports nothing of ours but the errors: the families import it (``zoo/models/__init__.py`` imports
every family, and ``import zoo`` imports ``zoo.models``), so the table is full before anyone reads it and
never changes afterwards. Building models with weights is :mod:`zoo.core.factory`'s job.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from zoo.core.errors import UnknownModelError, did_you_mean

# A family's reader for checkpoint layouts other than effzoo's own (timm's ``checkpoint_filter_fn``):
# (unpickled object, path) -> Checkpoint, or None when the object is not in that family's format.
CheckpointFilter = Callable[[Any, Any], Any]
# A family's reader for checkpoint *folders* (a Hugging Face model folder): (path, card or None) -> Checkpoint,
# or None when the folder is not in that family's format.
FolderReader = Callable[[Any, Any], Any]


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
        checkpoint_filter: the family's reader for foreign checkpoints (ultralytics ``.pt`` for LeYOLO).
        folder_reader: the family's reader for checkpoint folders (Hugging Face GPT-2 for PI-GPT).
        unused_modules: module names whose output the forward never uses, by design (LeYOLO-Medium's dead
            neck blocks, spec leyolo.md §2.8): they get no gradient and the FLOP trace never enters them.
        extra: family-specific metadata (e.g. released-checkpoint format, interchangeable weights).
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
    checkpoint_filter: CheckpointFilter | None = None
    unused_modules: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    folder_reader: FolderReader | None = None

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
    checkpoint_filter: CheckpointFilter | None = None,
    unused_modules: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    folder_reader: FolderReader | None = None,
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
            checkpoint_filter=checkpoint_filter,
            unused_modules=tuple(unused_modules),
            extra=dict(extra or {}),
            folder_reader=folder_reader,
        )
        return fn

    return decorator


def _natural_key(name: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None, *, family: str | None = None) -> list[str]:
    """Registered names matching an fnmatch ``pattern`` (e.g. ``'leyolo-*'``), naturally sorted."""
    names = [n for n, c in _REGISTRY.items() if family is None or c.family == family]
    if pattern:
        names = fnmatch.filter(names, pattern)
    return sorted(names, key=_natural_key)


def get_card(name: str) -> ModelCard:
    """The card of ``name``; an unknown name raises ``UnknownModelError`` listing the closest names."""
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


def checkpoint_filters() -> list[CheckpointFilter]:
    """Every family's foreign-checkpoint reader, once each, in registration order."""
    out: list[CheckpointFilter] = []
    for card in _REGISTRY.values():
        if card.checkpoint_filter is not None and card.checkpoint_filter not in out:
            out.append(card.checkpoint_filter)
    return out


def folder_readers() -> list[FolderReader]:
    """Every family's checkpoint-folder reader, once each, in registration order."""
    out: list[FolderReader] = []
    for card in _REGISTRY.values():
        if card.folder_reader is not None and card.folder_reader not in out:
            out.append(card.folder_reader)
    return out

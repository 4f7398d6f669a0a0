"""Checkpoints: read official ``.pt`` files safely, read/write effzoo ``.safetensors``, load strictly.

Formats read by ``read_checkpoint``:

* effzoo ``.safetensors``: tensors plus string metadata (model name, the builder overrides that rebuild
  the architecture, class names as JSON, input size, source, effzoo version), written by
  ``save_safetensors``;
* checkpoint folders (a Hugging Face GPT-2 folder), read by the family's folder reader on its card;
* ``torch.save`` zips, unpickled by ``zoo.core.safe_pickle`` (no pickled code runs), then handed to each
  family's checkpoint filter (timm's per-family ``checkpoint_filter_fn``, registered on the model card):
  LeYOLO's reads official ultralytics ``.pt`` files and foreign key layouts
  (:mod:`zoo.models.leyolo.checkpoint`). An object no family claims is taken as a plain state_dict.

``load_into`` is strict: any missing, unexpected or shape-mismatched key raises ``CheckpointError``
listing the first 10 of each with counts, and which registered models the checkpoint would fit.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.core.errors import CheckpointError, ZooError
from zoo.core.fileio import atomic_path
from zoo.core.registry import ModelCard, checkpoint_filters, folder_readers, get_card, list_models
from zoo.core.safe_pickle import load_torch_zip
from zoo.core.version import __version__

logger = logging.getLogger(__name__)

EFFZOO_FORMAT = "effzoo"
_SHOW = 10  # keys listed per category in a mismatch message


@dataclass
class Checkpoint:
    """Weights read from a file, plus what the file says about the model they belong to.

    Attributes:
        state_dict: tensor name -> tensor (floating tensors in fp32), keys in effzoo naming.
        metadata: what the file records (``format``: ``ultralytics`` | ``state_dict`` | ``effzoo``;
            ``model``, ``num_classes``, ``names``, ``input_size``, ``source``, ... when known).
        implied_overrides: builder kwargs the weights imply (``num_classes``, ``names``); ``create_model``
            applies them and refuses a conflicting user override.
    """

    state_dict: dict[str, Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    implied_overrides: dict[str, Any] = field(default_factory=dict)


# -- reading -------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike[str], card: ModelCard | None = None) -> Checkpoint:
    """Read ``path`` (official ``.pt`` / torch state_dict / effzoo ``.safetensors``) without running code.

    Args:
        path: the checkpoint file.
        card: the model it is meant for, if known (only used to word messages).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: a ``.pt`` whose pickle references a non-allow-listed global (nothing ran).
        CheckpointError: truncated, corrupt, or not a checkpoint effzoo understands.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, card)
    if not path.is_file():
        where = f" for {card.name}" if card else ""
        raise FileNotFoundError(f"Checkpoint{where} not found: {path}")
    if _is_safetensors(path):
        return _read_safetensors(path)
    return _read_torch(path, card)


def _read_folder(path: Path, card: ModelCard | None) -> Checkpoint:
    """A checkpoint folder (a Hugging Face model folder): the card's family reader first, then the others."""
    own = card.folder_reader if card is not None else None
    for reader in ([own] if own else []) + [r for r in folder_readers() if r is not own]:
        ckpt = reader(path, card)
        if ckpt is not None:
            return ckpt
    raise CheckpointError(f"{path} is a folder that holds no checkpoint effzoo reads: expected a Hugging Face "
                          "model folder (config.json + model.safetensors or pytorch_model.bin) or pass a file.")


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as fh:  # a zip (torch) starts with b"PK"; safetensors with a u64 header size
        head = fh.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _read_safetensors(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); "
                              "it is truncated or corrupt.") from err
    metadata: dict[str, Any] = {"format": meta.get("format", "safetensors"), **meta}
    implied: dict[str, Any] = {}
    try:
        if "overrides" in meta:
            implied = json.loads(meta["overrides"])
            if not isinstance(implied, dict):
                raise TypeError(f"'overrides' must be a JSON object, got {type(implied).__name__}")
        if "names" in meta:
            metadata["names"] = json.loads(meta["names"])
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: malformed effzoo metadata ({err}); re-create it with zoo convert.") from err
    for key in ("num_classes", "input_size"):
        if key in meta and meta[key].isdigit():
            metadata[key] = int(meta[key])
    return Checkpoint(state_dict=to_fp32(state), metadata=metadata, implied_overrides=implied)


# A torch.save file may hold the model, an EMA copy and optimizer moments (Adam: two), and the budget counts
# each storage once as read and once as viewed: 8 copies of the weights leave room for all of that.
BYTE_LIMIT_COPIES = 8
BYTE_LIMIT_SLACK = 64 << 20  # class-count / context-length overrides, metadata tensors


def checkpoint_byte_limit(path: Path, card: ModelCard | None = None) -> int:
    """Most bytes a ``.pt`` file's tensors may take once materialised, known before the file is read.

    With the target model known: a few copies of what it needs (``card.n_params`` in fp32). Without one
    (``zoo convert`` infers the model afterwards): a few times the file's own size, since honest tensors
    are views of the storages the file holds. See :class:`zoo.core.safe_pickle.ByteBudget`.
    """
    basis = card.n_params * 4 if card is not None else path.stat().st_size
    return BYTE_LIMIT_COPIES * int(basis) + BYTE_LIMIT_SLACK


def _read_torch(path: Path, card: ModelCard | None) -> Checkpoint:
    """A ``torch.save`` zip: each family's filter gets the unpickled object first (the card's own first),
    then a plain state_dict is taken as it is."""
    obj = load_torch_zip(path, max_bytes=checkpoint_byte_limit(path, card))
    own = card.checkpoint_filter if card is not None else None
    for reader in ([own] if own else []) + [f for f in checkpoint_filters() if f is not own]:
        try:
            ckpt = reader(obj, path)
        except CheckpointError as err:  # a filter's message may not say which file
            if str(path) in str(err):
                raise
            raise CheckpointError(f"{path}: {err}") from err
        if ckpt is not None:
            return ckpt
    if is_tensor_dict(obj):
        return Checkpoint(state_dict=to_fp32(obj), metadata={"format": "state_dict"})
    if isinstance(obj, dict) and not obj:
        raise CheckpointError(f"{path}: the checkpoint contains no tensors.")
    raise CheckpointError(f"{path}: unrecognised checkpoint content ({type(obj).__name__}); expected an "
                          "ultralytics checkpoint dict or a state_dict.")


def is_tensor_dict(obj: Any) -> bool:
    """A non-empty dict of str -> Tensor (a plain state_dict)."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor)
                                                       for k, v in obj.items())


def to_fp32(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Floating tensors -> contiguous fp32 (released weights are fp16); integer buffers kept as they are."""
    return {k: (v.float() if v.is_floating_point() else v).detach().contiguous() for k, v in state.items()}


# -- loading into a model ------------------------------------------------------------------------------
def state_dict_diff(expected: Mapping[str, Tensor], got: Mapping[str, Tensor]
                    ) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """(missing, unexpected, mismatched) keys of ``got`` relative to ``expected``;
    mismatched entries are (key, shape in got, shape expected)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [(k, tuple(got[k].shape), tuple(expected[k].shape)) for k in expected
                  if k in got and tuple(got[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, mismatched


def _format_diff(missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> str:
    def head(items: list[str]) -> str:
        more = f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
        return ", ".join(items[:_SHOW]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys [{head(missing)}]")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys [{head(unexpected)}]")
    if mismatched:
        shown = [f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched]
        parts.append(f"{len(mismatched)} shape mismatches [{head(shown)}]")
    return "; ".join(parts)


def load_into(model: nn.Module, ckpt: Checkpoint, source: str = "checkpoint") -> nn.Module:
    """Load ``ckpt`` into ``model`` strictly (every key, every shape) and return the model.

    Also adopts the checkpoint's class names when the model has a ``names`` attribute of the same length.

    Raises:
        CheckpointError: keys or shapes differ; the message lists missing, unexpected and mismatched keys
            (first 10 of each, with counts) and the registered models the checkpoint fits, if any.
    """
    expected = model.state_dict()
    missing, unexpected, mismatched = state_dict_diff(expected, ckpt.state_dict)
    wrong_kind = [f"{k} ({ckpt.state_dict[k].dtype})" for k, v in expected.items()
                  if k in ckpt.state_dict and v.is_floating_point() != ckpt.state_dict[k].is_floating_point()]
    if wrong_kind and not (missing or unexpected or mismatched):  # int weights would load as rounded/zero floats
        more = f", ... (+{len(wrong_kind) - _SHOW} more)" if len(wrong_kind) > _SHOW else ""
        raise CheckpointError(f"Checkpoint {source}: {len(wrong_kind)} tensors have a non-floating dtype where the "
                              f"model has floating weights [{', '.join(wrong_kind[:_SHOW])}{more}]; it is not a "
                              "checkpoint of trained weights.")
    if missing or unexpected or mismatched:
        target = getattr(model, "model_name", None) or type(model).__name__
        if getattr(model, "is_fused", False):
            hint = " The model is fused; load weights before calling fuse()."
        else:
            fits = matching_models(ckpt)
            hint = f" The checkpoint fits {', '.join(fits)}; pass that model name." if fits else \
                " It matches no registered model."
        raise CheckpointError(f"Checkpoint {source} does not fit {target}: "
                              f"{_format_diff(missing, unexpected, mismatched)}.{hint}")
    model.load_state_dict(ckpt.state_dict, strict=True)
    names = ckpt.implied_overrides.get("names") or ckpt.metadata.get("names")
    if names is not None and hasattr(model, "names") and len(names) == len(model.names):
        model.names = tuple(names)
    logger.info("loaded %d tensors from %s into %s", len(expected), source, getattr(model, "model_name", ""))
    return model


def matching_models(ckpt: Checkpoint, family: str | None = None) -> list[str]:
    """Registered models whose state_dict keys and shapes equal the checkpoint's (built on the meta device).

    Medium and Large LeYOLO are the same network, so both match a Medium/Large checkpoint.
    """
    if family is None:
        family = ckpt.metadata.get("family")  # a family filter that recognised its own format says so
    found = []
    for name in list_models(family=family):
        card = get_card(name)
        try:
            with torch.device("meta"):
                candidate = card.builder(**ckpt.implied_overrides)
        except (TypeError, ValueError, ZooError):  # builder does not take these overrides
            continue
        if not any(state_dict_diff(candidate.state_dict(), ckpt.state_dict)):
            found.append(name)
    return found


# -- writing -------------------------------------------------------------------------------------------
def save_safetensors(model: nn.Module, path: str | os.PathLike[str], *, name: str | None = None,
                     source: str = "", input_size: int | None = None,
                     overrides: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s state_dict as an effzoo ``.safetensors`` file, atomically, and return its path.

    Args:
        model: an unfused model (fused weights would not load into a fresh model).
        path: destination file.
        name: registry name recorded in the file; default ``model.model_name``.
        source: provenance string (e.g. the file it was converted from).
        input_size: default input size recorded; default ``model.input_size`` when present.
        overrides: builder kwargs needed to rebuild the model; default num_classes and names when the
            model has them. ``read_checkpoint`` returns them as ``implied_overrides``.

    Raises:
        ValueError: fused model, or no model name known.
    """
    from safetensors.torch import save_file

    if getattr(model, "is_fused", False):
        raise ValueError("Refusing to save a fused model: save the unfused weights (call fuse() after loading).")
    name = name or getattr(model, "model_name", None)
    if not name:
        raise ValueError("save_safetensors needs the registry name of the model (name='leyolo-nano').")
    if overrides is None and callable(getattr(model, "checkpoint_overrides", None)):
        overrides = model.checkpoint_overrides()  # families whose config changes shapes say what rebuilds them
    if overrides is None:
        overrides = {}
        if hasattr(model, "num_classes") and hasattr(model, "names"):
            overrides = {"num_classes": int(model.num_classes), "names": list(model.names)}
    metadata = {"format": EFFZOO_FORMAT, "effzoo_version": __version__, "model": name, "source": source,
                "overrides": json.dumps(dict(overrides))}
    if "num_classes" in overrides:
        metadata["num_classes"] = str(overrides["num_classes"])
    if "names" in overrides:
        metadata["names"] = json.dumps(list(overrides["names"]))
    size = input_size if input_size is not None else getattr(model, "input_size", None)
    if size is not None:
        metadata["input_size"] = str(int(size))
    tensors: dict[str, Tensor] = {}
    storages: set[int] = set()
    for key, value in model.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in storages and tensor.numel():  # tied weights: safetensors refuses tensors sharing memory
            tensor = tensor.clone()
        storages.add(ptr)
        tensors[key] = tensor
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file (recorded as provenance by ``zoo convert``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

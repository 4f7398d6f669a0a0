"""LeYOLO's checkpoint filter: official ultralytics ``.pt`` files and foreign key layouts -> effzoo keys.

Registered on every LeYOLO card (``checkpoint_filter=``), the way timm keeps a ``checkpoint_filter_fn``
next to each family, so the core checkpoint reader knows nothing about ultralytics.

* Official LeYOLO ``.pt`` (ultralytics 8.1.4 pickles of a whole ``DetectionModel``, fp16 EMA weights),
  already unpickled by ``zoo.core.safe_pickle`` into inert placeholders: the EMA model is preferred (as
  ultralytics' ``attempt_load_one_weight`` does), its state tensors are read from the module tree and cast
  to fp32; class names, train size, version and date come from the pickle.
* Key layouts: effzoo mirrors the official module tree, so ``model.{i}.…`` keys are kept as they are;
  Hugging Face ``YOLO`` wrapper dumps (``model.model.{i}…``) and bare ``DetectionModel.model`` dumps
  (``{i}…``) are normalised to ``model.{i}…``.
* The class count is read from the head (rows of the level-0 class branch's last conv) and becomes an
  implied override, so an 80-class checkpoint builds an 80-class model whatever the default.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from zoo.core.checkpoint import Checkpoint, is_tensor_dict, to_fp32
from zoo.core.errors import CheckpointError
from zoo.core.safe_pickle import module_state_dict

logger = logging.getLogger(__name__)

FAMILY = "leyolo"
_LAYER_KEY = re.compile(r"model\.\d+\.")


def leyolo_checkpoint_filter(obj: Any, path: str | Path) -> Checkpoint | None:
    """The effzoo ``Checkpoint`` of an unpickled LeYOLO/ultralytics object, or None if it is not one.

    Raises:
        CheckpointError: an ultralytics checkpoint dict without weights, or without any tensor.
    """
    metadata: dict[str, Any] = {}
    if is_tensor_dict(obj):
        state = official_to_effzoo_keys(obj)
        if not any(_LAYER_KEY.match(k) for k in state):
            return None  # another family's state_dict
        metadata["format"] = "state_dict"
    elif isinstance(obj, dict) and ("model" in obj or "ema" in obj):
        net = obj.get("ema") if obj.get("ema") is not None else obj.get("model")
        if net is None:
            raise CheckpointError(f"{path}: checkpoint has neither 'ema' nor 'model' weights.")
        metadata.update(format="ultralytics", family=FAMILY)
        state = dict(net) if is_tensor_dict(net) else module_state_dict(net)
        metadata.update(_ultralytics_metadata(obj, net))
        if not state:
            raise CheckpointError(f"{path}: the checkpoint contains no tensors.")
        state = official_to_effzoo_keys(state)
    else:
        return None
    state = to_fp32(state)
    implied: dict[str, Any] = {}
    nc = head_num_classes(state)
    if nc is not None:
        implied["num_classes"] = nc
        names = metadata.get("names")
        if isinstance(names, list) and len(names) == nc:
            implied["names"] = names
        elif names is not None:
            logger.warning("%s: %d class names for %d classes; ignoring the names", path, len(names), nc)
    return Checkpoint(state_dict=state, metadata=metadata, implied_overrides=implied)


def _ultralytics_metadata(ckpt: dict[str, Any], net: Any) -> dict[str, Any]:
    """Names, train image size, version and date from an unpickled ultralytics checkpoint."""
    meta: dict[str, Any] = {}
    attrs = getattr(net, "__dict__", {})
    names = attrs.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        meta["names"] = [str(names[k]) for k in sorted(names)]
    elif isinstance(names, (list, tuple)):
        meta["names"] = [str(n) for n in names]
    args = ckpt.get("train_args")
    if isinstance(args, dict) and isinstance(args.get("imgsz"), int):
        meta["train_imgsz"] = args["imgsz"]
    for key in ("version", "date"):
        if isinstance(ckpt.get(key), str):
            meta[key] = ckpt[key]
    yaml = attrs.get("yaml")
    if isinstance(yaml, dict) and isinstance(yaml.get("backbone"), list) and isinstance(yaml.get("head"), list):
        meta["yaml_layers"] = len(yaml["backbone"]) + len(yaml["head"])
    return meta


def official_to_effzoo_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map official state_dict keys to effzoo's (identity for ``model.{i}.…``; see the module docstring)."""
    keys = list(state)
    if keys and all(k.startswith("model.model.") for k in keys):
        return {k[len("model."):]: v for k, v in state.items()}
    if keys and all(re.match(r"\d+\.", k) for k in keys):
        return {f"model.{k}": v for k, v in state.items()}
    return dict(state)


def head_num_classes(state: Mapping[str, Tensor]) -> int | None:
    """Class count of a LeYOLO/YOLOv8 head: rows of the level-0 class branch's final conv."""
    for key, value in state.items():
        if re.fullmatch(r"model\.\d+\.cv3\.0\.\d+\.weight", key) and value.ndim == 4 and \
                f"{key[:-len('weight')]}bias" in state:
            return int(value.shape[0])
    return None

"""Hugging Face GPT-2 folders <-> PI-GPT: read ``config.json`` + weights, map tensors both ways.

Why here and without ``transformers``: a PI researcher's starting point is an HF GPT-2 checkpoint, and
reading one needs only JSON and safetensors (or a ``pytorch_model.bin`` read with ``weights_only=True``).
The mapping follows HF's ``modeling_gpt2.py``: ``Conv1D`` stores (in, out) weights (y = x W + b), so
every matrix is transposed into ``nn.Linear``'s (out, in); ``c_attn`` holds [Q | K | V] along its output
axis and is split in three; ``lm_head`` is tied to ``wte``. What cannot be expressed as a PI-GPT
(another architecture, ``scale_attn_by_inverse_layer_idx``, ``reorder_and_upcast_attn``, cross-attention,
an activation we do not have) is refused naming the ``config.json`` field that blocks it.

Three uses: ``read_hf_folder`` (the family's folder reader: ``create_model("pi-gpt2-small-gpt2",
checkpoint_path=FOLDER)``, ``zoo convert FOLDER out.safetensors``), ``init_from_hf`` (partial import into
a reduced-nonlinearity student, reporting which tensors stayed at init) and ``to_hf_state`` /
``hf_config_for`` (export back to a folder ``GPT2LMHeadModel.from_pretrained`` loads).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from zoo.models.pi_transformer.config import PIConfig

from zoo.core.checkpoint import Checkpoint, to_fp32
from zoo.core.errors import CheckpointError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
MAX_CONFIG_BYTES = 1 << 20  # a GPT-2 config.json is ~1 KB; refuse to parse anything claiming to be huge

# HF activation_function -> PIConfig.ffn_activation. gelu_new, gelu_pytorch_tanh and gelu_fast are the same
# tanh approximation written three ways (transformers/activations.py).
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                  "gelu": "gelu", "relu": "relu"}
EXPORT_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
# config.json switches that change the computation in ways a PI-GPT does not have: (field, value it must have)
_MUST_BE = (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
            ("reorder_and_upcast_attn", False), ("add_cross_attention", False))
_HF_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older checkpoints, not weights


def _fail(path: Path, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


# -- config ----------------------------------------------------------------------------------------------
def read_hf_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.json`` of an HF model folder (no other checks)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise _fail(path, f"missing; a Hugging Face model folder needs {CONFIG_FILE} next to "
                          f"{SAFETENSORS_FILE} or {TORCH_FILE} (save it with model.save_pretrained(folder)).")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise _fail(path, f"{path.stat().st_size} bytes is not a model config (limit {MAX_CONFIG_BYTES}).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(path, f"not valid JSON ({err}).") from err
    if not isinstance(data, dict):
        raise _fail(path, "must hold a JSON object of config fields.")
    return data


def pi_overrides_from_hf(hf: dict[str, Any], path: Path) -> dict[str, Any]:
    """``PIConfig`` fields an HF GPT-2 config implies (sizes, activation, eps, tying); refuses what cannot map.

    ``context_length`` is ``n_positions``: the HF model's context is its position table.
    """
    model_type = hf.get("model_type")
    if model_type != "gpt2":
        raise _fail(path, f"model_type={model_type!r} is not 'gpt2'; effzoo imports GPT-2 checkpoints only "
                          f"(architectures={hf.get('architectures')!r}).")
    for key, want in _MUST_BE:
        if key in hf and bool(hf[key]) != want:
            raise _fail(path, f"{key}={hf[key]!r} cannot be mapped onto a PI-GPT (it needs {key}={want}).")
    act = hf.get("activation_function", "gelu_new")
    if act not in HF_ACTIVATIONS:
        raise _fail(path, f"activation_function={act!r} cannot be mapped; supported: {', '.join(HF_ACTIVATIONS)}.")
    out: dict[str, Any] = {"ffn_activation": HF_ACTIVATIONS[act]}
    for hf_key, ours, default in (("vocab_size", "vocab_size", 50257), ("n_positions", "n_positions", 1024),
                                  ("n_layer", "n_layer", 12), ("n_head", "n_head", 12), ("n_embd", "d_model", 768)):
        value = hf.get(hf_key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _fail(path, f"{hf_key}={value!r} must be a positive integer.")
        out[ours] = value
    if out["d_model"] % out["n_head"]:
        raise _fail(path, f"n_head={out['n_head']} does not divide n_embd={out['d_model']}.")
    n_inner = hf.get("n_inner")
    if n_inner is not None and (isinstance(n_inner, bool) or not isinstance(n_inner, int) or n_inner <= 0):
        raise _fail(path, f"n_inner={n_inner!r} must be null or a positive integer.")
    out["d_ff"] = n_inner if n_inner is not None else 4 * out["d_model"]
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise _fail(path, f"layer_norm_epsilon={eps!r} must be a number > 0.")
    out["layer_norm_eps"] = float(eps)
    tie = hf.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise _fail(path, f"tie_word_embeddings={tie!r} must be true or false.")
    out["tie_embeddings"] = tie
    out["context_length"] = out["n_positions"]
    return out


# -- weights ---------------------------------------------------------------------------------------------
def read_hf_weights(folder: Path) -> tuple[dict[str, Tensor], Path]:
    """The folder's tensors (``model.safetensors``, its sharded index, or ``pytorch_model.bin``) and their file."""
    from safetensors import SafetensorError, safe_open

    files: list[Path] = []
    if (folder / SAFETENSORS_FILE).is_file():
        files = [folder / SAFETENSORS_FILE]
    elif (folder / SAFETENSORS_INDEX).is_file():
        index = folder / SAFETENSORS_INDEX
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = [folder / Path(name).name for name in sorted(set(weight_map.values()))]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise _fail(index, f"not a safetensors index (needs a 'weight_map' object: {err}).") from err
    if files:
        state: dict[str, Tensor] = {}
        for file in files:
            try:
                with safe_open(str(file), framework="pt", device="cpu") as fh:
                    state.update({k: fh.get_tensor(k) for k in fh.keys()})
            except (SafetensorError, OSError, ValueError, RuntimeError) as err:
                raise _fail(file, f"not a readable safetensors file ({err}); it is truncated or corrupt.") from err
        return state, files[0]
    file = folder / TORCH_FILE
    if not file.is_file():
        raise _fail(folder, f"no weights: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX} or {TORCH_FILE}.")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)  # never runs pickled code
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise _fail(file, f"not a readable weights_only torch file ({type(err).__name__}: {err}).") from err
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise _fail(file, "does not hold a state_dict (a dict of name -> tensor).")
    return dict(obj), file


def from_hf_state(hf_state: dict[str, Tensor], n_layer: int, d_model: int, tie: bool, path: Path
                  ) -> dict[str, Tensor]:
    """HF GPT-2 tensor names and layouts -> PIGPT names and layouts (``Conv1D`` transposed, ``c_attn`` split).

    Raises ``CheckpointError`` for a tensor no PIGPT has (a key we would otherwise drop silently) or a
    missing block tensor.
    """
    src = {k.removeprefix("transformer."): v for k, v in hf_state.items() if not k.endswith(_HF_BUFFERS)}
    out: dict[str, Tensor] = {}
    d = d_model

    def take(key: str) -> Tensor:
        if key not in src:
            raise _fail(path, f"tensor {key!r} is missing (n_layer={n_layer} in {CONFIG_FILE}).")
        return src.pop(key)

    out["wte.weight"], out["wpe.weight"] = take("wte.weight"), take("wpe.weight")
    for i in range(n_layer):
        h, b = f"h.{i}.", f"blocks.{i}."
        for ln, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            out[b + f"{ours}.weight"], out[b + f"{ours}.bias"] = take(h + f"{ln}.weight"), take(h + f"{ln}.bias")
        w, bias = take(h + "attn.c_attn.weight"), take(h + "attn.c_attn.bias")  # (d, 3d), (3d,) = [Q | K | V]
        if tuple(w.shape) != (d, 3 * d):
            raise _fail(path, f"{h}attn.c_attn.weight has shape {list(w.shape)}, expected [{d}, {3 * d}] "
                              f"from n_embd={d}.")
        for j, name in enumerate(("q", "k", "v")):
            out[b + f"attn.{name}.weight"] = w[:, j * d:(j + 1) * d].t().contiguous()  # (d_out, d_in)
            out[b + f"attn.{name}.bias"] = bias[j * d:(j + 1) * d].contiguous()
        for hf_name, ours in (("attn.c_proj", "attn.o"), ("mlp.c_fc", "ffn.fc_in"), ("mlp.c_proj", "ffn.fc_out")):
            out[b + f"{ours}.weight"] = take(h + f"{hf_name}.weight").t().contiguous()  # Conv1D (in, out) -> (out, in)
            out[b + f"{ours}.bias"] = take(h + f"{hf_name}.bias")
    out["ln_f.weight"], out["ln_f.bias"] = take("ln_f.weight"), take("ln_f.bias")
    head = hf_state.get("lm_head.weight")
    src.pop("lm_head.weight", None)
    if not tie:
        if head is None:
            raise _fail(path, "tie_word_embeddings=false but the weights have no lm_head.weight.")
        out["lm_head.weight"] = head
    elif head is not None and not torch.equal(head, out["wte.weight"]):
        raise _fail(path, "lm_head.weight differs from wte.weight although tie_word_embeddings=true "
                          f"in {CONFIG_FILE}; set it to false for an untied head.")
    if src:
        extra = sorted(src)
        raise _fail(path, f"{len(extra)} tensors a GPT-2 of n_layer={n_layer} does not have: "
                          f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}.")
    return out


def read_hf_folder(folder: str | os.PathLike[str], card: Any = None) -> Checkpoint | None:
    """The family's folder reader: an HF GPT-2 folder as a ``Checkpoint`` in PIGPT naming, or None.

    None means "not an HF model folder" (no config.json and no HF weights file); an HF folder that is
    incomplete or not GPT-2 raises ``CheckpointError`` naming the file and field. Strict loading only fits
    the exact GPT-2 preset; a reduced-nonlinearity card is told to use the partial import.
    """
    folder = Path(folder)
    hf_files = (CONFIG_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE)
    if not any((folder / f).is_file() for f in hf_files):
        return None
    hf = read_hf_config(folder)
    cfg_path = folder / CONFIG_FILE
    overrides = pi_overrides_from_hf(hf, cfg_path)
    if card is not None and card.extra.get("variant") not in ("gpt2", None):
        raise _fail(folder, f"a Hugging Face GPT-2 loads strictly only into pi-gpt2-<size>-gpt2, not {card.name}; "
                            f"for a partial import run: zoo convert {folder} OUT.safetensors --model {card.name} "
                            "--partial (or zoo.models.pi_transformer.hf_gpt2.init_from_hf).")
    hf_state, weights_file = read_hf_weights(folder)
    state = from_hf_state(hf_state, overrides["n_layer"], overrides["d_model"], overrides["tie_embeddings"],
                          weights_file)
    _check_shapes(state, overrides, weights_file)
    meta = {"format": "hf-gpt2", "family": "pi_transformer", "source": str(folder),
            "suggested_model": suggested_model(overrides)}
    return Checkpoint(state_dict=to_fp32(state), metadata=meta, implied_overrides=overrides)


def _check_shapes(state: dict[str, Tensor], overrides: dict[str, Any], path: Path) -> None:
    """Embedding tables must agree with config.json (vocab_size, n_positions): say which one does not."""
    for key, field_name, rows in (("wte.weight", "vocab_size", overrides["vocab_size"]),
                                  ("wpe.weight", "n_positions", overrides["n_positions"])):
        if state[key].shape[0] != rows:
            raise _fail(path, f"{key} has {state[key].shape[0]} rows but {CONFIG_FILE} says {field_name}={rows}.")


def suggested_model(overrides: dict[str, Any]) -> str:
    """The GPT-2 preset whose size matches (``pi-gpt2-small-gpt2`` for L12 H12 d768), else the tiny one."""
    sizes = {(12, 12, 768): "small", (18, 12, 768): "small-l18"}
    size = sizes.get((overrides["n_layer"], overrides["n_head"], overrides["d_model"]), "tiny")
    return f"pi-gpt2-{size}-gpt2"


# -- partial import into a reduced-nonlinearity student ---------------------------------------------------
@dataclass
class PartialImport:
    """What ``init_from_hf`` did: tensors copied, tensors left at their init, HF tensors the student has no
    place for (e.g. GPT-2's V/O biases in a student without ``vo_bias``)."""

    loaded: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        left = ", ".join(self.left_at_init[:8]) + (" ..." if len(self.left_at_init) > 8 else "")
        return (f"{len(self.loaded)} tensors imported, {len(self.left_at_init)} left at init"
                f"{f' ({left})' if left else ''}, {len(self.unused)} GPT-2 tensors unused")


@torch.no_grad()
def init_from_hf(model: nn.Module, folder: str | os.PathLike[str]) -> PartialImport:
    """Copy every GPT-2 tensor that has the same name and shape in ``model`` (a PIGPT of matching sizes).

    A LayerNorm-free student keeps GPT-2's attention, FFN and embedding weights; its missing norms, scaling
    gains, temperatures or fused FFN stay at init and are reported. Sizes (n_layer, n_head, d_model, vocab,
    positions) must match config.json: a mismatch raises naming the field.
    """
    folder = Path(folder)
    hf = read_hf_config(folder)
    overrides = pi_overrides_from_hf(hf, folder / CONFIG_FILE)
    cfg: PIConfig = model.config
    for ours in ("vocab_size", "n_layer", "n_head", "d_model"):
        if getattr(cfg, ours) != overrides[ours]:
            raise _fail(folder / CONFIG_FILE, f"{ours}={overrides[ours]} but the student has {ours}="
                                              f"{getattr(cfg, ours)}; build the student with {ours}={overrides[ours]}.")
    if cfg.n_pos > overrides["n_positions"]:
        raise _fail(folder / CONFIG_FILE, f"n_positions={overrides['n_positions']} is shorter than the student's "
                                          f"{cfg.n_pos} positions; build it with context_length <= "
                                          f"{overrides['n_positions']}.")
    hf_state, weights_file = read_hf_weights(folder)
    src = from_hf_state(hf_state, overrides["n_layer"], overrides["d_model"], overrides["tie_embeddings"],
                        weights_file)
    src["wpe.weight"] = src["wpe.weight"][:cfg.n_pos]  # a shorter student keeps the first positions
    report = copy_matching(model, src)
    logger.info("init_from_hf %s: %s", folder, report.summary())
    return report


@torch.no_grad()
def copy_matching(model: nn.Module, state: dict[str, Tensor]) -> PartialImport:
    """Copy every tensor of ``state`` whose name and shape exist in ``model``; report the rest.

    A position table longer than the model's is cut to its first rows (a student with a shorter context).
    """
    own = model.state_dict()
    src = dict(state)
    if "wpe.weight" in src and "wpe.weight" in own and src["wpe.weight"].shape[0] > own["wpe.weight"].shape[0]:
        src["wpe.weight"] = src["wpe.weight"][:own["wpe.weight"].shape[0]]
    report = PartialImport()
    for key, target in own.items():
        value = src.pop(key, None)
        if value is not None and tuple(value.shape) == tuple(target.shape):
            target.copy_(value.to(target.dtype))
            report.loaded.append(key)
        else:
            report.left_at_init.append(key)
            if value is not None:
                report.unused.append(key)
    report.unused.extend(sorted(src))
    return report


# -- export ------------------------------------------------------------------------------------------------
def check_exportable(cfg: PIConfig) -> None:
    """Raise ``ValueError`` naming the first PIConfig field that GPT2LMHeadModel cannot express."""
    checks = (("norm", cfg.norm == "layernorm", "'layernorm'"), ("final_norm", cfg.final_norm == "layernorm",
              "'layernorm'"), ("ffn_activation", cfg.ffn_activation in EXPORT_ACTIVATIONS,
              " or ".join(map(repr, EXPORT_ACTIVATIONS))), ("ffn_fused", not cfg.ffn_fused, "False"),
              ("ffn_layers", cfg.n_ffn_layers == cfg.n_layer, "None"), ("ffn_scaling", cfg.ffn_scaling == "none",
              "'none'"), ("attn_temperature", cfg.attn_temperature == "none", "'none'"))
    for name, ok, want in checks:
        if not ok:
            raise ValueError(f"{name}={getattr(cfg, name)!r} has no GPT-2 equivalent (GPT2LMHeadModel needs "
                             f"{name}={want}); export pi-gpt2-<size>-gpt2, sm-ln-g or sm-ln-r models.")


def hf_config_for(cfg: PIConfig) -> dict[str, Any]:
    """The ``config.json`` of the GPT2LMHeadModel that computes what a PIGPT with ``cfg`` computes.

    Dropouts are 0: the PI-GPT has none besides ``embd_dropout``, which is recorded as ``embd_pdrop``.
    """
    check_exportable(cfg)
    eot = cfg.vocab_size - 1 if cfg.vocab_size == 50_257 else None  # GPT-2's <|endoftext|> only in its own vocab
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
            "n_positions": cfg.n_pos, "n_embd": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": cfg.ffn_dim, "activation_function": EXPORT_ACTIVATIONS[cfg.ffn_activation],
            "layer_norm_epsilon": cfg.layer_norm_eps, "initializer_range": cfg.init_std,
            "resid_pdrop": 0.0, "embd_pdrop": float(cfg.embd_dropout), "attn_pdrop": 0.0,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": cfg.tie_embeddings, "bos_token_id": eot, "eos_token_id": eot,
            "torch_dtype": "float32"}


@torch.no_grad()
def to_hf_state(model: nn.Module) -> dict[str, Tensor]:
    """PIGPT state -> HF GPT2LMHeadModel state (``transformer.*`` names, Conv1D layouts, fused ``c_attn``).

    Biases a PI-GPT variant does not have (sm-ln-g has none on V, O and the FFN) are written as zeros,
    which is exactly what the PI-GPT computes.
    """
    cfg: PIConfig = model.config
    check_exportable(cfg)
    if getattr(model, "is_fused", False):
        raise ValueError("Export the unfused model: fold()/fuse() results have no GPT-2 layout.")
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    d = cfg.d_model

    def bias(key: str, n: int) -> Tensor:
        return sd.get(key, torch.zeros(n))

    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"]}
    for i in range(cfg.n_layer):
        b, h = f"blocks.{i}.", f"transformer.h.{i}."
        for ours, ln in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[h + f"{ln}.weight"], out[h + f"{ln}.bias"] = sd[b + f"{ours}.weight"], sd[b + f"{ours}.bias"]
        out[h + "attn.c_attn.weight"] = torch.cat([sd[b + f"attn.{n}.weight"] for n in "qkv"], 0).t()  # (d, 3d)
        out[h + "attn.c_attn.bias"] = torch.cat([bias(b + f"attn.{n}.bias", d) for n in "qkv"])
        for ours, hf_name, n_out in (("attn.o", "attn.c_proj", d), ("ffn.fc_in", "mlp.c_fc", cfg.ffn_dim),
                                     ("ffn.fc_out", "mlp.c_proj", d)):
            out[h + f"{hf_name}.weight"] = sd[b + f"{ours}.weight"].t()  # (out, in) -> Conv1D (in, out)
            out[h + f"{hf_name}.bias"] = bias(b + f"{ours}.bias", n_out)
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.contiguous() for k, v in out.items()}

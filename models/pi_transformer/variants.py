"""Registered PI-GPT builders: ``pi-gpt2-<size>-<variant>`` for 3 sizes x the 12 variants of spec §3 + GPT-2.

A variant is a set of switches (table ``VARIANTS``); a size is a ``PIConfig`` preset (``SIZES``). The
builders are generated from these two tables so the 36 entries cannot drift apart, each with a typed,
keyword-only signature ``(*, context_length=..., vocab_size=..., **overrides) -> PIGPT`` and a docstring
saying what makes the variant different. Overrides are ``PIConfig`` fields (e.g. ``ffn_layers=6`` for
AERO's i6 pruning, ``ffn_activation="leaky_relu", leaky_slope=0.1`` on ``sm-r`` for the LN-free leaky
variant, ``n_positions=1024`` for the reference parameter count). Paper numbers: spec §10.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from zoo.models.pi_transformer.config import PIConfig
from zoo.models.pi_transformer.hf_gpt2 import read_hf_folder
from zoo.models.pi_transformer.model import PIGPT

from zoo.core.registry import get_card, register_model

FAMILY = "pi_transformer"
LN_FREE = dict(norm="none")  # final LayerNorm kept, as in the reference code (spec §3 footnote)
SCALED_FUSED = dict(norm="none", ffn_activation="identity", ffn_fused=True, ffn_scaling="learnable")

# variant suffix -> (paper name, switches, one-line description)
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sm-ln-g": ("SM+LN+G", dict(norm="layernorm", ffn_activation="gelu"),
                "Softmax + LayerNorm + GELU baseline: every PI-savings figure is measured against this row."),
    "sm-ln-r": ("SM+LN+R", dict(norm="layernorm", ffn_activation="relu"),
                "Baseline with ReLU instead of GELU: cheaper FFN nonlinearity, LayerNorm kept."),
    "sm-ln": ("SM+LN", dict(norm="layernorm", ffn_activation="identity"),
              "LayerNorm kept, FFN nonlinearity removed (identity activation)."),
    "sm-g": ("SM+G", dict(LN_FREE, ffn_activation="gelu"),
             "LayerNorm-free with GELU: the entropic-overload model of ReLU's Revival."),
    "sm-r": ("SM+R", dict(LN_FREE, ffn_activation="relu"),
             "LayerNorm-free with ReLU: the best LN-free model of ReLU's Revival."),
    "sm": ("SM", dict(LN_FREE, ffn_activation="identity"),
           "Softmax-only: no LayerNorm, no FFN nonlinearity; diverges (NaNs) in the paper."),
    "sm-wn-ffn": ("SM + WeightNorm(FFN)", dict(norm="weightnorm", norm_targets=("ffn",), ffn_activation="identity"),
                  "Softmax-only with weight normalization on the FFN linears (folded at inference)."),
    "sm-sn-ffn": ("SM + SpectralNorm(FFN)", dict(norm="spectralnorm", norm_targets=("ffn",),
                                                 ffn_activation="identity"),
                  "Softmax-only with spectral normalization on the FFN linears (folded at inference)."),
    "sm-scffn": ("SM+ScFFN", dict(LN_FREE, ffn_activation="identity", ffn_scaling="learnable"),
                 "Softmax-only with learnable FFN branch/skip scaling (S4), unfused d->4d->d FFN."),
    "sm-scfuffn": ("SM+ScFuFFN", dict(SCALED_FUSED),
                   "Softmax-only with a scaled, fused d x d FFN (S3, S4): AERO's architecture."),
    "sm-t-scfuffn": ("SM(t)+ScFuFFN", dict(SCALED_FUSED, attn_temperature="learnable"),
                     "Scaled fused FFN plus learnable per-(head, position) attention temperature."),
    "ereg-sm-t-scfuffn": ("EReg(SM(t)+ScFuFFN)", dict(SCALED_FUSED, attn_temperature="learnable",
                                                      entropy_reg=dict(enabled=True)),
                          "SM(t)+ScFuFFN trained with entropy regularization: the paper's proposed model."),
}

# Not a paper variant: GPT-2 itself (Radford et al. 2019; HF GPT2LMHeadModel), the teacher and the interop
# target (zoo.models.pi_transformer.hf_gpt2 imports and exports HF folders). Registered beside the paper's 12.
GPT2_VARIANT = "gpt2"
INTEROP_VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    GPT2_VARIANT: ("GPT-2", dict(norm="layernorm", ffn_activation="gelu_tanh", qk_bias=True, vo_bias=True,
                                 ffn_bias=True, init_scheme="gpt2"),
                   "Exact GPT-2: softmax + LayerNorm + tanh GELU, biases on every linear, 1/sqrt(2L) residual init."),
}
# GPT-2's own vocabulary and position table at the GPT-2 sizes, so released checkpoints load as they are
GPT2_SIZE_DEFAULTS: dict[str, dict[str, int]] = {
    "small": dict(vocab_size=50_257, n_positions=1024),
    "small-l18": dict(vocab_size=50_257, n_positions=1024),
}

# size -> (preset, default context length, default vocabulary)
SIZES: dict[str, tuple[Callable[..., PIConfig], int, int]] = {
    "small": (PIConfig.small, 128, 50_000),
    "small-l18": (PIConfig.small_l18, 128, 50_000),
    "tiny": (PIConfig.tiny, 64, 256),
}

_PPL = "CodeParrot eval perplexity"
# (size, variant) -> ({metric@T: value}, source). 3-decimal values come from the 2410.09637 repository.
PAPER: dict[tuple[str, str], tuple[dict[str, float], str]] = {
    ("small", "sm-ln-g"): ({"ppl@128": 2.688, "ppl@256": 2.35}, f"{_PPL}: 2501.03489 Table 2 (T128), Table 7 (T256)"),
    ("small", "sm-ln-r"): ({"ppl@128": 2.757, "ppl@256": 2.41}, f"{_PPL}: 2501.03489 Table 2 (T128), Table 7 (T256)"),
    ("small", "sm-ln"): ({"ppl@128": 3.38}, f"{_PPL}: 2501.03489 Table 2"),
    ("small", "sm-g"): ({"ppl@128": 3.197}, f"{_PPL}: 2501.03489 Table 2"),
    ("small", "sm-r"): ({"ppl@128": 2.936}, f"{_PPL}: 2501.03489 Table 2"),
    ("small", "sm"): ({}, "2501.03489 Table 2: diverges (NaN perplexity)"),
    ("small", "sm-wn-ffn"): ({"ppl@128": 3.640}, f"{_PPL}: 2501.03489 Table 6"),
    ("small", "sm-sn-ffn"): ({"ppl@128": 3.624}, f"{_PPL}: 2501.03489 Table 6"),
    ("small", "sm-scffn"): ({"ppl@128": 3.50, "ppl@256": 3.04}, f"{_PPL}: AERO Table 4 (T128), Table 5 (T256)"),
    ("small", "sm-scfuffn"): ({"ppl@128": 3.48, "ppl@256": 3.03},
                              f"{_PPL}: 2501.03489 Table 3 (T128), Table 7 (T256)"),
    ("small", "ereg-sm-t-scfuffn"): ({"ppl@128": 3.21, "ppl@256": 2.92},
                                     f"{_PPL}: 2501.03489 Table 3 (T128), Table 7 (T256)"),
    ("small-l18", "sm-ln-g"): ({"ppl@128": 2.56}, f"{_PPL}: 2501.03489 Table 8"),
    ("small-l18", "sm-ln-r"): ({"ppl@128": 2.63}, f"{_PPL}: 2501.03489 Table 8"),
    ("small-l18", "sm-scffn"): ({"ppl@128": 3.26}, f"{_PPL}: 2501.03489 Table 8 (AERO)"),
    ("small-l18", "sm-scfuffn"): ({"ppl@128": 3.24}, f"{_PPL}: 2501.03489 Table 8"),
    ("small-l18", "ereg-sm-t-scfuffn"): ({"ppl@128": 3.13}, f"{_PPL}: 2501.03489 Table 8"),
}


def variant_switches(variant: str) -> dict[str, Any]:
    """The ``PIConfig`` switches of a variant suffix (``"sm-ln-g"``, ``"gpt2"``), a copy safe to modify."""
    return dict({**VARIANTS, **INTEROP_VARIANTS}[variant][1])


def config_for_name(name: str, **overrides: Any) -> PIConfig:
    """The ``PIConfig`` a registered name builds with ``overrides``, without allocating weights (meta device)."""
    card = get_card(name)
    if card.family != FAMILY:
        raise ValueError(f"{name!r} is a {card.family} model, not a PI-GPT; see zoo.list_models('pi-*').")
    with torch.device("meta"):
        return card.builder(**{k: v for k, v in overrides.items() if v is not None}).config


def _create_pi_gpt(size: str, variant: str, *, context_length: int, vocab_size: int, **overrides: Any) -> PIGPT:
    preset = SIZES[size][0]
    cfg = preset(**{**variant_switches(variant), "context_length": context_length, "vocab_size": vocab_size,
                    **overrides})
    model = PIGPT(cfg)
    model.model_name = f"pi-gpt2-{size}-{variant}"
    return model


def _make_builder(size: str, variant: str) -> Callable[..., PIGPT]:
    paper_name, _, description = {**VARIANTS, **INTEROP_VARIANTS}[variant]
    size_defaults = dict(GPT2_SIZE_DEFAULTS.get(size, {})) if variant == GPT2_VARIANT else {}
    default_ctx = SIZES[size][1]
    default_vocab = size_defaults.pop("vocab_size", SIZES[size][2])

    def builder(*, context_length: int = default_ctx, vocab_size: int = default_vocab, **overrides: Any) -> PIGPT:
        return _create_pi_gpt(size, variant, context_length=context_length, vocab_size=vocab_size,
                              **{**size_defaults, **overrides})

    name = f"pi-gpt2-{size}-{variant}"
    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = (f"{description}\n\n{paper_name} at size {size!r}; overrides are PIConfig fields "
                       f"(context_length default {default_ctx}, vocab_size default {default_vocab}).")
    return builder


def _register_all() -> None:
    for size, (_, ctx, _) in SIZES.items():
        for variant, (paper_name, _, _) in {**VARIANTS, **INTEROP_VARIANTS}.items():
            paper, source = PAPER.get((size, variant), ({}, ""))
            if variant == GPT2_VARIANT:
                source = "Radford et al. 2019 (GPT-2); HF transformers GPT2LMHeadModel"
            input_sizes = tuple(sorted({ctx, *(int(k.split("@")[1]) for k in paper)}))
            register_model(
                f"pi-gpt2-{size}-{variant}", family=FAMILY, task="language-modeling", input_size=ctx,
                input_sizes=input_sizes, paper=paper, source=source or "spec pi_transformer.md §3 (no published run)",
                extra={"paper_name": paper_name, "size": size, "variant": variant, "config_class": "PIConfig"},
                folder_reader=read_hf_folder,
            )(_make_builder(size, variant))


_register_all()

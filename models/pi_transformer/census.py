"""Analytic nonlinearity census, FLOPs and parameter count of a PI-GPT config (spec §7).

The paper convention is what reproduces the published strings ("SM: 144 × R^{128×128}; LN: 24 ×
R^{128×768}; G: 12 × R^{128×3072}", "14.5B / 7.7B"). The same census is *measured* on the real module by
``zoo.count_nonlinear``; the test suite checks that both agree for every preset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from torch import nn
from zoo.models.pi_transformer.config import PIConfig

ACT_SYMBOL = {"gelu": "G", "gelu_tanh": "G", "relu": "R", "leaky_relu": "LReLU", "learnable_leaky_relu": "LReLU"}


def as_config(model_or_config: nn.Module | PIConfig) -> PIConfig:
    """The ``PIConfig`` of a PIGPT (or the config itself)."""
    if isinstance(model_or_config, PIConfig):
        return model_or_config
    cfg = getattr(model_or_config, "config", None)
    if not isinstance(cfg, PIConfig):
        raise ValueError(f"Expected a PIConfig or a PI-GPT model, got {type(model_or_config).__name__}; "
                         "build one with zoo.create_model('pi-gpt2-...').")
    return cfg


def paper_billions(flops: int) -> str:
    """FLOPs as the papers print them: billions, one decimal, e.g. ``"14.5B"``.

    The printed values are consistent with rounding to 0.01 B first and then to 0.1 B, half up (spec §7:
    7,247,757,312 prints as 7.3B, not 7.2B); every value of the §7 table reproduces with this rule.
    """
    two = (Decimal(flops) / Decimal(10**9)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{two.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}B"


@dataclass(frozen=True)
class NonlinearityCensus:
    """Nonlinear operations and FLOPs of one forward pass at sequence length T (spec §7).

    Attributes:
        seq_len: T.
        softmax_instances: L*H softmax matrices of T x T.
        softmax_rows: L*H*T rows of length T.
        softmax_elements: L*H*T^2 (paper convention: the full T x T matrix).
        softmax_causal_elements: L*H*T(T+1)/2, the causally valid entries.
        layernorm_instances: block LayerNorms, 2L for ``norm=layernorm`` (L + L_ffn when FFNs are
            pruned, since a pruned block has no second norm), else 0.
        layernorm_rows: one inverse square root per row: instances * T.
        layernorm_elements: instances * T * d.
        final_layernorm_elements: T*d for ``final_norm=layernorm``; listed apart, excluded from the paper
            totals (the paper's census ignores it).
        activation: FFN nonlinearity name, or None (identity or fused FFN).
        activation_instances: L_ffn blocks with an unfused FFN and a non-identity activation.
        activation_elements: L_ffn * T * d_ff.
        ffn_flops: FFN FLOPs, 2 per multiply-accumulate: unfused L_ffn*2*(2*T*d*d_ff), fused L_ffn*2*T*d^2.
        attn_flops: paper convention L*(8*T*d^2 + 3*T^2*d) (derived; reproduces every printed value).
        attn_flops_strict: L*(8*T*d^2 + 4*T^2*d): Q,K,V,O plus QK^T and AV over the full T x T.
    """

    seq_len: int
    softmax_instances: int
    softmax_rows: int
    softmax_elements: int
    softmax_causal_elements: int
    layernorm_instances: int
    layernorm_rows: int
    layernorm_elements: int
    final_layernorm_elements: int
    activation: str | None
    activation_instances: int
    activation_elements: int
    ffn_flops: int
    attn_flops: int
    attn_flops_strict: int
    d_model: int
    d_ff: int

    @property
    def nonlinear_elements(self) -> int:
        """Paper-convention total of nonlinear elements: softmax + block LayerNorm + activation."""
        return self.softmax_elements + self.layernorm_elements + self.activation_elements

    @property
    def paper_string(self) -> str:
        """The census as the papers print it, e.g. ``SM: 144 × R^{128×128}; LN: 24 × R^{128×768}``."""
        T = self.seq_len
        parts = [f"SM: {self.softmax_instances} × R^{{{T}×{T}}}"]
        if self.layernorm_instances:
            parts.append(f"LN: {self.layernorm_instances} × R^{{{T}×{self.d_model}}}")
        if self.activation_instances:
            parts.append(f"{ACT_SYMBOL[self.activation]}: {self.activation_instances} × R^{{{T}×{self.d_ff}}}")
        return "; ".join(parts)

    @property
    def flops_string(self) -> str:
        """FFN / attention FLOPs as printed in the papers' tables, e.g. ``14.5B / 7.7B``."""
        return f"{paper_billions(self.ffn_flops)} / {paper_billions(self.attn_flops)}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(nonlinear_elements=self.nonlinear_elements, paper_string=self.paper_string,
                   flops_string=self.flops_string,
                   flops_convention="2 FLOPs per multiply-accumulate; attention paper convention L(8Td^2+3T^2d)")
        return out


def nonlinearity_census(model_or_config: nn.Module | PIConfig, seq_len: int | None = None) -> NonlinearityCensus:
    """Analytic census and FLOPs of a config (or model) at ``seq_len`` (default: its context length).

    Weight/spectral norm, temperature and FFN scaling count 0: they are folded or plaintext scalings at
    inference (spec §7).
    """
    cfg = as_config(model_or_config)
    T = cfg.context_length if seq_len is None else seq_len
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"seq_len={seq_len!r} must be a positive integer.")
    L, H, d = cfg.n_layer, cfg.n_head, cfg.d_model
    L_ffn = cfg.n_ffn_layers
    d_ff = cfg.d_model if cfg.ffn_fused else cfg.ffn_dim
    ln_inst = (L + L_ffn) if cfg.norm == "layernorm" else 0
    act = None if (cfg.ffn_fused or cfg.ffn_activation == "identity") else cfg.ffn_activation
    act_inst = L_ffn if act else 0
    ffn_flops = L_ffn * 2 * T * d * d if cfg.ffn_fused else L_ffn * 2 * (2 * T * d * d_ff)
    return NonlinearityCensus(
        seq_len=T,
        softmax_instances=L * H, softmax_rows=L * H * T, softmax_elements=L * H * T * T,
        softmax_causal_elements=L * H * T * (T + 1) // 2,
        layernorm_instances=ln_inst, layernorm_rows=ln_inst * T, layernorm_elements=ln_inst * T * d,
        final_layernorm_elements=T * d if cfg.final_norm == "layernorm" else 0,
        activation=act, activation_instances=act_inst, activation_elements=act_inst * T * d_ff,
        ffn_flops=ffn_flops,
        attn_flops=L * (8 * T * d * d + 3 * T * T * d),
        attn_flops_strict=L * (8 * T * d * d + 4 * T * T * d),
        d_model=d, d_ff=d_ff,
    )


@dataclass(frozen=True)
class ParamCount:
    """Analytic parameter count (spec §7): ``model`` is what ``model.parameters()`` holds; ``thresholds``
    are the entropy regularizer's theta (training-only, owned by the trainer, reported apart)."""

    model: int
    thresholds: int


def param_count(model_or_config: nn.Module | PIConfig) -> ParamCount:
    """V*d + n_positions*d + sum over blocks + final LN (+ untied head), from the formula of §7.

    Per block: 4d for two LayerNorms, 4d^2 + 2d (Q,K bias) for attention, 2*d*d_ff (unfused) or d^2
    (fused) for the FFN, 2 for learnable scaling, H*T (``head_position``) or H temperatures; plus the
    optional V/O and FFN biases, weight-norm gains (one per output unit) and learnable leaky slopes.
    """
    cfg = as_config(model_or_config)
    V, d, H, L = cfg.vocab_size, cfg.d_model, cfg.n_head, cfg.n_layer
    total = V * d + cfg.n_pos * d + (0 if cfg.tie_embeddings else V * d)
    total += 2 * d if cfg.final_norm == "layernorm" else 0
    wn = cfg.norm == "weightnorm"
    for layer in range(L):
        has_ffn = layer < cfg.n_ffn_layers
        n_norms = (2 if has_ffn else 1) if cfg.norm == "layernorm" else 0
        total += n_norms * 2 * d
        total += 4 * d * d + (2 * d if cfg.qk_bias else 0) + (2 * d if cfg.vo_bias else 0)
        total += sum(d for t in ("q", "k", "v", "o") if wn and t in cfg.targets)  # gains g
        if cfg.attn_temperature == "learnable":
            total += H * cfg.context_length if cfg.temperature_shape == "head_position" else H
        if not has_ffn:
            continue
        if cfg.ffn_fused:
            total += d * d + (d if cfg.ffn_bias else 0) + (d if wn and "ffn" in cfg.targets else 0)
        else:
            total += 2 * d * cfg.ffn_dim + ((cfg.ffn_dim + d) if cfg.ffn_bias else 0)
            total += (cfg.ffn_dim + d) if wn and "ffn" in cfg.targets else 0
        total += 2 if cfg.ffn_scaling == "learnable" else 0
        if cfg.ffn_activation == "learnable_leaky_relu" and cfg.learnable_slope_mode == "per_layer":
            total += 1
    if cfg.ffn_activation == "learnable_leaky_relu" and cfg.learnable_slope_mode == "global":
        total += 1
    return ParamCount(model=total, thresholds=L * H)

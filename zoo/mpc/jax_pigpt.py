"""The PI-GPT forward pass written once in jax.numpy, for SPU (runs only under ``.venv-mpc``).

SPU compiles JAX programs into its MPC bytecode, so the network that the 2PC engine runs is this file,
not the PyTorch module. It is written from the same equations (spec §4) and reads the same weights (a
folded ``PIGPT`` state dict, handed over as safetensors), and ``zoo.mpc.measure`` checks it against the
PyTorch forward in plaintext. Nothing of ``zoo`` is imported here: the MPC environment has numpy<2 and
jax<=0.4.34 and no torch.

Threat model of the papers (spec §8.1): the client holds the tokens (as one-hot rows, so the embedding is
a matrix product), the server holds the weights. Whatever depends on the weights alone is computed by
the server in plaintext before sharing (``prepare_params``: transposes, 1/alpha, 1/(sqrt(hs) * tau));
whatever touches the tokens runs under MPC. The causal mask is public.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# Masked scores are pushed this far below every valid one before the row max, then multiplied by the
# public 0/1 mask after exp, so their (fixed-point, possibly garbage) exponentials contribute exactly 0.
MASK_FILL = 1e4

Params = dict[str, np.ndarray]


def prepare_params(state: dict[str, np.ndarray], cfg: dict[str, Any], seq_len: int) -> Params:
    """Server-side plaintext preprocessing of a folded PI-GPT state dict into the arrays ``forward`` reads.

    Args:
        state: ``PIGPT.fold(fuse_ffn=False).state_dict()`` as numpy arrays (torch (out, in) linears).
        cfg: the folded ``PIConfig.to_dict()``.
        seq_len: T; position and temperature tables are cut to their first T rows.
    """
    d, n_head = cfg["d_model"], cfg["n_head"]
    hs = d // n_head
    f32 = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float32))  # noqa: E731
    p: Params = {"wte": f32(state["wte.weight"]), "wpe": f32(state["wpe.weight"][:seq_len])}
    if not cfg["tie_embeddings"]:
        p["lm_head"] = f32(state["lm_head.weight"].T)  # (d, V)
    if cfg["final_norm"] == "layernorm":
        p["lnf_g"], p["lnf_b"] = f32(state["ln_f.weight"]), f32(state["ln_f.bias"])
    n_ffn = cfg["ffn_layers"] if cfg["ffn_layers"] is not None else cfg["n_layer"]
    for i in range(cfg["n_layer"]):
        b = f"blocks.{i}."
        if cfg["norm"] == "layernorm":
            p[f"{i}.ln1_g"], p[f"{i}.ln1_b"] = f32(state[b + "ln1.weight"]), f32(state[b + "ln1.bias"])
        for name in "qkvo":
            p[f"{i}.w{name}"] = f32(state[b + f"attn.{name}.weight"].T)  # (d_in, d_out): x @ w
            if b + f"attn.{name}.bias" in state:
                p[f"{i}.b{name}"] = f32(state[b + f"attn.{name}.bias"])
        tau = state.get(b + "attn.temperature")
        if tau is not None:  # head_position (H, ctx) or head (H,): one divisor per query row, folded with sqrt(hs)
            tau = np.asarray(tau, dtype=np.float64)
            tau = tau[:, :seq_len] if tau.ndim == 2 else np.repeat(tau[:, None], seq_len, axis=1)
            p[f"{i}.q_scale"] = f32(1.0 / (math.sqrt(hs) * tau))  # (H, T)
        if i >= n_ffn:
            continue
        if cfg["norm"] == "layernorm":
            p[f"{i}.ln2_g"], p[f"{i}.ln2_b"] = f32(state[b + "ln2.weight"]), f32(state[b + "ln2.bias"])
        names = ("fc",) if cfg["ffn_fused"] else ("fc_in", "fc_out")
        for name in names:
            p[f"{i}.{name}_w"] = f32(state[b + f"ffn.{name}.weight"].T)
            if b + f"ffn.{name}.bias" in state:
                p[f"{i}.{name}_b"] = f32(state[b + f"ffn.{name}.bias"])
        slope = state.get(b + "ffn.slope", state.get("act_slope"))
        if slope is not None and cfg["ffn_activation"] == "learnable_leaky_relu":
            p[f"{i}.slope"] = f32(slope)
        if cfg["ffn_scaling"] != "none":
            p[f"{i}.inv_alpha"] = f32(1.0 / np.asarray(state[b + "alpha"], dtype=np.float64))
            p[f"{i}.beta"] = f32(state[b + "beta"])
    return p


def _layernorm(x: jax.Array, g: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis: one rsqrt per row, the nonlinearity the LN-free variants remove."""
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdims=True)
    return xc * jax.lax.rsqrt(var + eps) * g + b


def _softmax_causal(s: jax.Array) -> jax.Array:
    """Row softmax of (H, T, T) scores under the public causal mask; masked entries come out exactly 0."""
    T = s.shape[-1]
    mask = jnp.tril(jnp.ones((T, T), dtype=s.dtype))  # public constant
    s = s * mask + (mask - 1.0) * MASK_FILL
    e = jnp.exp(s - s.max(-1, keepdims=True)) * mask
    return e / e.sum(-1, keepdims=True)


def _activation(x: jax.Array, kind: str, slope: Any) -> jax.Array:
    """phi of (S2): exact (erf) GELU, ReLU, identity or LeakyReLU."""
    if kind == "gelu":
        return jax.nn.gelu(x, approximate=False)
    if kind == "relu":
        return jnp.maximum(x, 0.0)
    if kind == "identity":
        return x
    return jnp.maximum(x, 0.0) + slope * jnp.minimum(x, 0.0)  # leaky_relu / learnable_leaky_relu


def _attention(p: Params, i: int, u: jax.Array, cfg: dict[str, Any]) -> jax.Array:
    """Causal multi-head attention of (S1) on u (T, d); temperature divides the queries row by row."""
    T, d = u.shape
    H = cfg["n_head"]
    hs = d // H

    def proj(name: str) -> jax.Array:
        y = u @ p[f"{i}.w{name}"]
        return y + p[f"{i}.b{name}"] if f"{i}.b{name}" in p else y

    q = proj("q").reshape(T, H, hs).transpose(1, 0, 2)  # (H, T, hs)
    k = proj("k").reshape(T, H, hs).transpose(1, 0, 2)  # (H, T, hs)
    v = proj("v").reshape(T, H, hs).transpose(1, 0, 2)  # (H, T, hs)
    if f"{i}.q_scale" in p:
        q = q * p[f"{i}.q_scale"][:, :, None]  # 1 / (sqrt(hs) tau_{h,i}), secret (a server weight)
    else:
        q = q * (1.0 / math.sqrt(hs))  # public constant
    a = _softmax_causal(q @ k.transpose(0, 2, 1))  # (H, T, T)
    y = (a @ v).transpose(1, 0, 2).reshape(T, d)  # (T, d)
    out = y @ p[f"{i}.wo"]
    return out + p[f"{i}.bo"] if f"{i}.bo" in p else out


def _ffn(p: Params, i: int, v: jax.Array, cfg: dict[str, Any]) -> jax.Array:
    """(S2) unfused d -> d_ff -> d with phi, or (S3) one fused d x d matrix."""
    if cfg["ffn_fused"]:
        y = v @ p[f"{i}.fc_w"]
        return y + p[f"{i}.fc_b"] if f"{i}.fc_b" in p else y
    h = v @ p[f"{i}.fc_in_w"]
    if f"{i}.fc_in_b" in p:
        h = h + p[f"{i}.fc_in_b"]
    h = _activation(h, cfg["ffn_activation"], p.get(f"{i}.slope", cfg["leaky_slope"]))  # (T, d_ff)
    y = h @ p[f"{i}.fc_out_w"]
    return y + p[f"{i}.fc_out_b"] if f"{i}.fc_out_b" in p else y


def forward(p: Params, onehot: jax.Array, cfg: dict[str, Any], last_only: bool = False) -> jax.Array:
    """Logits of a PI-GPT, spec §4.

    Args:
        p: ``prepare_params`` output (numpy or traced arrays).
        onehot: (T, V) one-hot rows of the client's tokens.
        cfg: the folded ``PIConfig.to_dict()``.
        last_only: only the last position's logits (1, V): the papers' setting, one output token from T
            inputs, where the vocabulary projection runs once.

    Returns:
        (T, V) logits, or (1, V) with ``last_only``.
    """
    eps = cfg["layer_norm_eps"]
    ln = cfg["norm"] == "layernorm"
    n_ffn = cfg["ffn_layers"] if cfg["ffn_layers"] is not None else cfg["n_layer"]
    x = onehot @ p["wte"] + p["wpe"]  # (T, d)
    for i in range(cfg["n_layer"]):
        u = _layernorm(x, p[f"{i}.ln1_g"], p[f"{i}.ln1_b"], eps) if ln else x
        x = x + _attention(p, i, u, cfg)  # the attention residual is never scaled
        if i >= n_ffn:
            continue
        v = _layernorm(x, p[f"{i}.ln2_g"], p[f"{i}.ln2_b"], eps) if ln else x
        f = _ffn(p, i, v, cfg)
        x = x * p[f"{i}.beta"] + f * p[f"{i}.inv_alpha"] if f"{i}.beta" in p else x + f  # (S4)
    if last_only:
        x = x[-1:]  # (1, d)
    if cfg["final_norm"] == "layernorm":
        x = _layernorm(x, p["lnf_g"], p["lnf_b"], eps)
    return x @ (p["lm_head"] if "lm_head" in p else p["wte"].T)  # (T or 1, V)


def flat_forward(p: Params, cfg: dict[str, Any], last_only: bool) -> tuple[Callable[..., jax.Array], list[str]]:
    """``forward`` as a function of positional arrays (onehot, *weights), which SPU's compiler takes.

    Returns:
        (fn(onehot, *weights), names of the weights in argument order).
    """
    names = sorted(p)

    def fn(onehot: jax.Array, *weights: jax.Array) -> jax.Array:
        return forward(dict(zip(names, weights)), onehot, cfg, last_only)

    return fn, names


def onehot_tokens(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """(T,) token ids -> (T, V) float32 one-hot rows (the client's private input)."""
    out = np.zeros((len(tokens), vocab_size), dtype=np.float32)
    out[np.arange(len(tokens)), tokens] = 1.0
    return out


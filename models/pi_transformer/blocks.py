"""Building blocks of the PI-GPT family: reparameterised linears, FFN, causal attention, the block.

Each module implements one equation of spec §4 and knows nothing about the registry. Modules take the
``PIConfig`` (or the few fields they need); shapes follow nanoGPT's notation: B batch, T time, H heads,
hs = d_model / H head size, C = d_model.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from zoo.models.pi_transformer.config import PIConfig

# Power iterations run once when a spectral-norm layer is (re)initialised, so that sigma is a good
# estimate from the first step on (torch.nn.utils.spectral_norm does the same, with 15).
_SN_WARMUP_ITERS = 15


class WeightNormLinear(nn.Module):
    """Linear layer with W = g * V / ||V|| (Salimans & Kingma 2016), norm over inputs per output unit (§4.3).

    ``g`` starts at the row norms of the initial V, so the layer computes the same function as a plain
    linear with weight V at initialisation. ``weight`` gives the folded plain weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(torch.empty(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def reset_parameters(self, std: float) -> None:
        with torch.no_grad():
            nn.init.normal_(self.weight_v, mean=0.0, std=std)
            self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=1))
            if self.bias is not None:
                self.bias.zero_()

    @property
    def weight(self) -> Tensor:
        """(out, in) effective weight g * V / ||V||_row."""
        return self.weight_v * (self.weight_g / torch.linalg.vector_norm(self.weight_v, dim=1)).unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class SpectralNormLinear(nn.Module):
    """Linear layer with W = V / sigma(V) (Miyato et al. 2018), no learnable gain (§4.3).

    sigma is estimated by power iteration: one iteration per training forward on persistent vectors
    ``u`` (out) and ``v`` (in); in eval mode the vectors are frozen, so the eval weight is a fixed matrix
    that ``fold`` can write out. The vectors are buffers, not parameters.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("u", torch.empty(out_features))
        self.register_buffer("v", torch.empty(in_features))

    def reset_parameters(self, std: float) -> None:
        with torch.no_grad():
            nn.init.normal_(self.weight_v, mean=0.0, std=std)
            if self.bias is not None:
                self.bias.zero_()
            self.u.copy_(F.normalize(torch.randn_like(self.u), dim=0))
            self.v.copy_(F.normalize(torch.randn_like(self.v), dim=0))
            self._power_iteration(_SN_WARMUP_ITERS)

    def _power_iteration(self, n: int) -> None:
        if self.weight_v.is_meta:  # shape-only build (parameter counting): nothing to estimate
            return
        with torch.no_grad():
            w = self.weight_v
            for _ in range(n):
                self.v.copy_(F.normalize(w.t().mv(self.u), dim=0, eps=1e-12))
                self.u.copy_(F.normalize(w.mv(self.v), dim=0, eps=1e-12))

    @property
    def weight(self) -> Tensor:
        """(out, in) effective weight V / (u^T V v) with the current (frozen) vectors."""
        sigma = torch.einsum("o,oi,i->", self.u, self.weight_v, self.v)
        return self.weight_v / sigma

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self._power_iteration(1)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def make_linear(cfg: PIConfig, in_features: int, out_features: int, *, bias: bool, target: str) -> nn.Module:
    """A plain, weight-normed or spectral-normed linear, depending on whether ``target`` is in norm_targets."""
    if target in cfg.targets:
        cls = WeightNormLinear if cfg.norm == "weightnorm" else SpectralNormLinear
        return cls(in_features, out_features, bias)
    return nn.Linear(in_features, out_features, bias=bias)


def make_norm(cfg: PIConfig) -> nn.Module:
    """Block-level pre-norm: LayerNorm for ``norm=layernorm``, identity otherwise (§4.3)."""
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
    return nn.Identity()


def activation(x: Tensor, kind: str, slope: float | Tensor) -> Tensor:
    """phi of (S2): exact (erf) GELU, tanh GELU, ReLU, identity or LeakyReLU(s) = max(x,0) + s*min(x,0)."""
    if kind == "gelu":
        return F.gelu(x)  # approximate="none": the exact form the spec asks for
    if kind == "gelu_tanh":
        return F.gelu(x, approximate="tanh")  # GPT-2's gelu_new: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
    if kind == "relu":
        return F.relu(x)
    if kind == "identity":
        return x
    if kind == "leaky_relu":
        return F.leaky_relu(x, float(slope))
    # learnable slope: PReLU with one shared weight is exactly LeakyReLU(s), and gradients reach s
    return F.prelu(x, slope.reshape(1))


class FeedForward(nn.Module):
    """FFN of (S2) (``fc_in`` -> phi -> ``fc_out``) or the fused d x d map of (S3) (``fc``).

    With ``learnable_leaky_relu`` and ``learnable_slope_mode=per_layer`` the slope lives here; in
    ``global`` mode the model owns one slope and passes it to every FFN.
    """

    def __init__(self, cfg: PIConfig) -> None:
        super().__init__()
        self.kind = cfg.ffn_activation
        self.fused = cfg.ffn_fused
        d = cfg.d_model
        if self.fused:
            self.fc = make_linear(cfg, d, d, bias=cfg.ffn_bias, target="ffn")
        else:
            self.fc_in = make_linear(cfg, d, cfg.ffn_dim, bias=cfg.ffn_bias, target="ffn")
            self.fc_out = make_linear(cfg, cfg.ffn_dim, d, bias=cfg.ffn_bias, target="ffn")
        self.fixed_slope = cfg.leaky_slope
        if self.kind == "learnable_leaky_relu" and cfg.learnable_slope_mode == "per_layer":
            self.slope = nn.Parameter(torch.full((), float(cfg.leaky_slope)))
        else:
            self.slope = None

    def forward(self, x: Tensor, shared_slope: Tensor | None = None) -> Tensor:
        if self.fused:
            return self.fc(x)
        slope = self.slope if self.slope is not None else shared_slope
        h = activation(self.fc_in(x), self.kind, slope if slope is not None else self.fixed_slope)  # (B, T, d_ff)
        return self.fc_out(h)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention with optional learnable temperature, Eq. (S1) (§4.2).

    Two paths compute the same function: ``F.scaled_dot_product_attention`` (fused kernels; the
    temperature divides the queries, which divides row i of the scores by tau_i exactly as (S1) does),
    and an explicit float32 softmax that also returns the probabilities for the entropy metrics and the
    regularizer. Masked entries come out exactly 0 in the explicit path (-inf before the softmax).
    """

    def __init__(self, cfg: PIConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_head, self.d_head = cfg.n_head, cfg.d_head
        self.q = make_linear(cfg, d, d, bias=cfg.qk_bias, target="q")
        self.k = make_linear(cfg, d, d, bias=cfg.qk_bias, target="k")
        self.v = make_linear(cfg, d, d, bias=cfg.vo_bias, target="v")
        self.o = make_linear(cfg, d, d, bias=cfg.vo_bias, target="o")
        self.temperature_shape = cfg.temperature_shape
        if cfg.attn_temperature == "learnable":
            shape = (cfg.n_head, cfg.context_length) if cfg.temperature_shape == "head_position" else (cfg.n_head,)
            self.temperature = nn.Parameter(torch.full(shape, float(cfg.temperature_init)))
        else:
            self.temperature = None

    def _tau(self, T: int) -> Tensor | None:
        """Temperature broadcastable to (B, H, T, 1): one divisor per (head, query position) or per head."""
        if self.temperature is None:
            return None
        if self.temperature.dim() == 2:  # head_position: first T entries for shorter sequences
            if T > self.temperature.shape[1]:
                raise ValueError(f"Sequence length {T} exceeds the temperature table ({self.temperature.shape[1]} "
                                 "positions = context_length); build the model with a larger context_length.")
            return self.temperature[:, :T].unsqueeze(0).unsqueeze(-1)  # (1, H, T, 1)
        return self.temperature.view(1, -1, 1, 1)  # (1, H, 1, 1)

    def forward(self, x: Tensor, need_probs: bool = False) -> tuple[Tensor, Tensor | None]:
        """Args: x (B, T, C). Returns (y (B, T, C), probs (B, H, T, T) float32 or None)."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.d_head).transpose(1, 2)  # (B, H, T, hs)
        k = self.k(x).view(B, T, self.n_head, self.d_head).transpose(1, 2)  # (B, H, T, hs)
        v = self.v(x).view(B, T, self.n_head, self.d_head).transpose(1, 2)  # (B, H, T, hs)
        tau = self._tau(T)
        scale = 1.0 / math.sqrt(self.d_head)
        probs = None
        if need_probs:
            # (S1) literally, in float32 even under autocast: s = q.k / (sqrt(hs) * tau), -inf above the diagonal
            with torch.autocast(device_type=x.device.type, enabled=False):
                scores = (q.float() @ k.float().transpose(-2, -1)) * scale  # (B, H, T, T)
                if tau is not None:
                    scores = scores / tau.float()
                causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~causal, float("-inf"))
                probs = torch.softmax(scores, dim=-1)  # masked entries are exactly 0
            y = probs.to(v.dtype) @ v  # (B, H, T, hs)
        else:
            if tau is not None:
                q = q / tau.to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)  # (B, H, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.o(y), probs


class Block(nn.Module):
    """One pre-norm block: h^ = h + MHA(N1(h)); h = beta * h^ + (1/alpha) * FFN(N2(h^)) (§4.2, (S4)).

    The attention residual is never scaled. Blocks at depth >= ``ffn_layers`` have no FFN sub-block at
    all (no N2, FFN or alpha/beta parameters): h = h^. With ``ffn_scaling=fixed`` alpha and beta are
    buffers (constants), with ``learnable`` parameters, with ``none`` absent (alpha = beta = 1).
    """

    def __init__(self, cfg: PIConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.has_ffn = layer_idx < cfg.n_ffn_layers
        self.scaling = cfg.ffn_scaling if self.has_ffn else "none"
        if self.has_ffn:
            self.ln2 = make_norm(cfg)
            self.ffn = FeedForward(cfg)
        if self.scaling != "none":
            alpha = torch.full((), float(cfg.ffn_scale_alpha_init))
            beta = torch.full((), float(cfg.ffn_scale_beta_init))
            if self.scaling == "learnable":
                self.alpha, self.beta = nn.Parameter(alpha), nn.Parameter(beta)
            else:
                self.register_buffer("alpha", alpha)
                self.register_buffer("beta", beta)

    def forward(self, x: Tensor, need_probs: bool = False,
                shared_slope: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Args: x (B, T, C). Returns (x (B, T, C), attention probs (B, H, T, T) or None)."""
        a, probs = self.attn(self.ln1(x), need_probs)
        x = x + a
        if not self.has_ffn:
            return x, probs
        f = self.ffn(self.ln2(x), shared_slope)
        if self.scaling == "none":
            return x + f, probs
        return self.beta * x + f / self.alpha, probs

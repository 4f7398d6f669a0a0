"""PI-GPT: one decoder-only GPT whose switches cover every reduced-nonlinearity variant of the papers.

Jha & Reagen, "Entropy-Guided Attention for Private LLMs" (arXiv 2501.03489), "ReLU's Revival"
(2410.09637) and "AERO" (2410.13060); the exact specification is ``shared/spec/pi_transformer.md``.
Reads like nanoGPT: embeddings, a stack of ``Block``s, a final norm, a tied LM head.

Forward API (what trainers and tools use):

* ``model(tokens)`` -> logits ``(B, T, V)`` through ``F.scaled_dot_product_attention`` (fast path).
* ``model(tokens, return_attn=True)`` -> ``PIOutput(logits, attn)`` where ``attn`` is a list of L float32
  tensors ``(B, H, T, T)``: the row-softmax probabilities *after* temperature and causal mask, exactly
  as used in the forward (explicit path). Gradients flow through them, so the entropy regularizer
  (``EntropyRegularizer``) and the metrics (``attention_entropy``) use this.
* ``model.fold()`` -> an inference copy: weight/spectral norm written into plain weights, FFN scaling and
  temperatures as buffers (constants), identity-activation FFNs fused into one d x d matrix, no
  training-only parameters; same outputs.
"""
from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from zoo.models.pi_transformer.blocks import Block, SpectralNormLinear, WeightNormLinear
from zoo.models.pi_transformer.config import EntropyRegConfig, PIConfig

logger = logging.getLogger(__name__)

__all__ = ["PIGPT", "PIOutput", "PIConfig", "EntropyRegConfig", "next_token_loss"]


class PIOutput(NamedTuple):
    """What ``PIGPT(tokens, return_attn=True)`` returns."""

    logits: Tensor  # (B, T, V)
    attn: list[Tensor]  # L tensors (B, H, T, T), float32 probabilities after temperature and mask


def next_token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean cross-entropy over all B*(T-1) next-token predictions, in float32 (§4.1).

    Args:
        logits: (B, T, V) from the model; position i predicts token i+1.
        tokens: (B, T) the same token ids that went in.
    """
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), tokens[:, 1:].reshape(-1))


class PIGPT(nn.Module):
    """Decoder-only GPT with switchable LayerNorm, FFN activation, FFN fusion/scaling/pruning and temperature.

    Args:
        config: the architecture (spec §2); see ``PIConfig`` and the registered variants.
    """

    def __init__(self, config: PIConfig) -> None:
        super().__init__()
        self.config = config
        self.model_name: str | None = None  # registry name, set by the registered builders
        self.input_size = config.context_length  # default T, recorded in checkpoints
        self.is_fused = False  # True for ``fold()`` results: they cannot be saved as training weights
        d = config.d_model
        self.wte = nn.Embedding(config.vocab_size, d)  # E: token embedding, also the LM head when tied
        self.wpe = nn.Embedding(config.n_pos, d)  # P: learned absolute positions
        self.drop = nn.Dropout(config.embd_dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_eps) if config.final_norm == "layernorm" else nn.Identity()
        # Tied head = F.linear with wte.weight, so the state_dict holds the matrix once (safetensors
        # refuses two names for one storage).
        self.lm_head = None if config.tie_embeddings else nn.Linear(d, config.vocab_size, bias=False)
        if config.ffn_activation == "learnable_leaky_relu" and config.learnable_slope_mode == "global":
            self.act_slope = nn.Parameter(torch.full((), float(config.leaky_slope)))
        else:
            self.act_slope = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Spec §5: every linear weight and both embeddings N(0, init_std^2), biases 0, LayerNorm (1, 0).

        No depth-dependent rescaling of output projections under ``init_scheme=spec``: the reference
        initialised like HF GPT-2 blocks built by hand, so the 1/sqrt(2L) rule never applied. Under
        ``init_scheme=gpt2`` the linears that write into the residual stream (attention output, FFN
        output or fused FFN) get init_std/sqrt(2L), GPT-2's scaled init (Radford et al. 2019, section 2.3).
        """
        std = self.config.init_std
        residual = {id(m) for b in self.blocks for m in (b.attn.o, *self._ffn_outputs(b))}
        residual_std = std / math.sqrt(2 * self.config.n_layer) if self.config.init_scheme == "gpt2" else std
        for m in self.modules():
            s = residual_std if id(m) in residual else std
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=s)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=std)
            elif isinstance(m, (WeightNormLinear, SpectralNormLinear)):
                m.reset_parameters(s)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()

    @staticmethod
    def _ffn_outputs(block: nn.Module) -> tuple[nn.Module, ...]:
        """The FFN linear whose output is added to the residual stream (none in a pruned block)."""
        if not block.has_ffn:
            return ()
        return (block.ffn.fc,) if block.ffn.fused else (block.ffn.fc_out,)

    def forward(self, tokens: Tensor, *, return_attn: bool = False) -> Tensor | PIOutput:
        """Run the LM.

        Args:
            tokens: (B, T) integer token ids, T <= n_positions (and <= context_length with a
                per-position temperature).
            return_attn: also return every block's attention probabilities (explicit softmax path).

        Returns:
            logits (B, T, V), or ``PIOutput(logits, attn)`` when ``return_attn``.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}; add a batch dimension.")
        B, T = tokens.shape
        if T > self.config.n_pos:
            raise ValueError(f"Sequence length {T} exceeds n_positions={self.config.n_pos}; build the model with "
                             f"context_length >= {T} (or n_positions >= {T}).")
        pos = torch.arange(T, device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(pos))  # (B, T, C)
        attn: list[Tensor] = []
        for block in self.blocks:
            x, probs = block(x, return_attn, self.act_slope)
            if return_attn:
                attn.append(probs)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight) if self.lm_head is None else self.lm_head(x)  # (B, T, V)
        return PIOutput(logits, attn) if return_attn else logits

    # ---- training helpers ------------------------------------------------------------------------------
    def optimizer_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups of §5: decay on 2-D weights (linears, embeddings) only.

        No decay on biases, LayerNorm parameters, weight-norm gains, alpha/beta, temperatures (2-D for
        ``head_position``, hence excluded by name) or leaky slopes. Entropy thresholds live in the
        ``EntropyRegularizer``, which the trainer adds as its own no-decay group.
        """
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.dim() >= 2 and not name.endswith("temperature") else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def checkpoint_overrides(self) -> dict[str, Any]:
        """The whole ``PIConfig`` as JSON-friendly builder kwargs (nanoGPT's ``model_args``).

        ``save_safetensors`` stores them, so a checkpoint describes its network completely: ``create_model``
        rebuilds the same architecture from the file (and refuses an override that contradicts it), and
        ``PIConfig.from_dict`` rebuilds it without the registry.
        """
        return self.config.to_dict()

    # ---- inference folding -----------------------------------------------------------------------------
    def fold(self, *, fuse_ffn: bool = True) -> PIGPT:
        """An inference copy with every training-only reparameterisation written into plain tensors.

        * weight/spectral norm -> plain ``nn.Linear`` weights (eval-mode spectral estimate, §4.3);
        * ``ffn_scaling=learnable`` -> ``fixed`` (alpha, beta become buffers);
        * ``temperature_shape=head`` -> folded into W_Q and b_Q (q / tau_h); ``head_position`` -> a buffer;
        * learnable leaky slopes -> buffers;
        * ``fuse_ffn``: an identity-activation FFN becomes one d x d matrix W_out @ W_in (S3), 8x fewer FLOPs;
        * the entropy regularizer is dropped (it never was part of the inference graph).

        The result is in eval mode with ``requires_grad=False`` and computes the same logits as
        ``self.eval()`` up to float rounding.
        """
        src = self.config
        fuse = fuse_ffn and src.ffn_activation == "identity" and not src.ffn_fused
        temp_into_q = src.attn_temperature == "learnable" and src.temperature_shape == "head"
        cfg = src.replace(
            norm="none" if src.norm in ("weightnorm", "spectralnorm") else src.norm, norm_targets=None,
            ffn_scaling="fixed" if src.ffn_scaling == "learnable" else src.ffn_scaling,
            ffn_fused=src.ffn_fused or fuse, d_ff=None if (src.ffn_fused or fuse) else src.d_ff,
            attn_temperature="none" if temp_into_q else src.attn_temperature,
            entropy_reg=EntropyRegConfig(),
        )
        state = self._folded_state(fuse=fuse, temp_into_q=temp_into_q)
        with torch.device("meta"):
            folded = PIGPT(cfg)
        folded.load_state_dict(state, strict=True, assign=True)
        for module in folded.modules():  # trainable constants -> buffers
            for name in ("temperature", "slope", "act_slope"):
                p = module._parameters.get(name)
                if p is not None:
                    del module._parameters[name]
                    module.register_buffer(name, p.detach())
        folded.requires_grad_(False)
        folded.model_name, folded.is_fused = self.model_name, True
        return folded.eval()

    @torch.no_grad()
    def _folded_state(self, *, fuse: bool, temp_into_q: bool) -> dict[str, Tensor]:
        """State dict of the folded model, computed in float64 and cast back to each weight's dtype."""
        was_training = self.training
        self.eval()  # spectral norm: use the frozen vectors, no power-iteration step
        try:
            state = {k: v.detach().clone() for k, v in self.state_dict().items()}
            for name, module in self.named_modules():
                if isinstance(module, (WeightNormLinear, SpectralNormLinear)):
                    for key in ("weight_v", "weight_g", "u", "v"):
                        state.pop(f"{name}.{key}", None)
                    state[f"{name}.weight"] = module.weight.detach().clone()
            for i, block in enumerate(self.blocks):
                p = f"blocks.{i}."
                if temp_into_q:
                    inv_tau = 1.0 / block.attn.temperature.double()  # (H,)
                    per_row = inv_tau.repeat_interleave(self.config.d_head)  # (C,): head h owns rows h*hs..
                    w = state[p + "attn.q.weight"]
                    state[p + "attn.q.weight"] = (w.double() * per_row[:, None]).to(w.dtype)
                    if p + "attn.q.bias" in state:
                        b = state[p + "attn.q.bias"]
                        state[p + "attn.q.bias"] = (b.double() * per_row).to(b.dtype)
                    del state[p + "attn.temperature"]
                if fuse and block.has_ffn:
                    w_in, w_out = state.pop(p + "ffn.fc_in.weight"), state.pop(p + "ffn.fc_out.weight")
                    state[p + "ffn.fc.weight"] = (w_out.double() @ w_in.double()).to(w_in.dtype)  # (C, C)
                    if p + "ffn.fc_in.bias" in state:
                        b_in, b_out = state.pop(p + "ffn.fc_in.bias"), state.pop(p + "ffn.fc_out.bias")
                        state[p + "ffn.fc.bias"] = (w_out.double() @ b_in.double() + b_out.double()).to(b_in.dtype)
            return state
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        c = self.config
        return (f"L={c.n_layer}, H={c.n_head}, d={c.d_model}, norm={c.norm}, act={c.ffn_activation}, "
                f"fused={c.ffn_fused}, scaling={c.ffn_scaling}, temperature={c.attn_temperature}")

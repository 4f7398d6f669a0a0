"""Configuration of the reduced-nonlinearity GPT family (spec ``pi_transformer.md`` §2, §6.2).

Every paper variant (§3) is a setting of these switches; nothing about the architecture lives anywhere
else. Fields whose default depends on another field (``n_positions``, ``d_ff``, ``ffn_layers``,
``norm_targets``) keep ``None`` as given, so ``dataclasses.replace(cfg, context_length=256)`` re-derives
them; read the resolved values through the properties ``n_pos``, ``ffn_dim``, ``n_ffn_layers`` and
``targets``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from zoo.core.errors import did_you_mean

NORMS = ("layernorm", "none", "weightnorm", "spectralnorm")
NORM_TARGETS = ("q", "k", "v", "o", "ffn")
FINAL_NORMS = ("layernorm", "none")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "identity", "leaky_relu", "learnable_leaky_relu")
INIT_SCHEMES = ("spec", "gpt2")
SLOPE_MODES = ("global", "per_layer")
FFN_SCALINGS = ("none", "learnable", "fixed")
TEMPERATURES = ("none", "learnable")
TEMPERATURE_SHAPES = ("head_position", "head")
REDUCTIONS = ("sum", "mean")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}; pick one of those.")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer.")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0.")


@dataclass(frozen=True)
class EntropyRegConfig:
    """Entropy regularization (§6.2). Training-only: it never changes the inference graph.

    Attributes:
        enabled: add ``lambda_ * L_ent`` to the cross-entropy during training.
        lambda_: loss weight; 1e-5 is the CodeParrot recipe (5e-5 Languini). Under ``sum`` scale it by
            (128*128)/(B*T) for other batch shapes (§6.2 recommendation, see ``EntropyRegularizer``).
        gamma: tolerance as a fraction of E_max; 0.2 is the paper's final choice.
        threshold_init: initial theta for every (block, head); not published, learned values lie in 0.20-0.52.
        reduction: ``sum`` (what both published code listings compute) or ``mean`` (Algorithm 1).
        emax: ``log_T``: E_max = ln T with T the key length of the attention matrix (only option published).
        eps: inside the log, so that 0 * log 0 contributes 0 instead of NaN.
    """

    enabled: bool = False
    lambda_: float = 1e-5
    gamma: float = 0.2
    threshold_init: float = 0.5
    reduction: str = "sum"
    emax: str = "log_T"
    eps: float = 1e-9

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"entropy_reg.enabled={self.enabled!r} must be true or false.")
        if not isinstance(self.lambda_, (int, float)) or self.lambda_ < 0:
            raise ValueError(f"entropy_reg.lambda_={self.lambda_!r} must be a number >= 0 (paper: 1e-5).")
        if not isinstance(self.gamma, (int, float)) or not 0 <= self.gamma < 1:
            raise ValueError(f"entropy_reg.gamma={self.gamma!r} must be in [0, 1) (paper: 0.2).")
        if not isinstance(self.threshold_init, (int, float)) or not 0 <= self.threshold_init <= 1:
            raise ValueError(f"entropy_reg.threshold_init={self.threshold_init!r} must be in [0, 1] (default 0.5).")
        _choice("entropy_reg.reduction", self.reduction, REDUCTIONS)
        _choice("entropy_reg.emax", self.emax, ("log_T",))
        _positive_float("entropy_reg.eps", self.eps)

    @classmethod
    def coerce(cls, value: EntropyRegConfig | Mapping[str, Any] | bool | None) -> EntropyRegConfig:
        """Accept a config, a dict (YAML/JSON/checkpoint metadata), a bool (enable with defaults) or None."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if isinstance(value, bool):
            return cls(enabled=value)
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            for key in value:
                if key not in known:
                    raise ValueError(f"Unknown entropy_reg field {key!r}.{did_you_mean(key, known)} "
                                     f"Valid fields: {', '.join(sorted(known))}.")
            return cls(**dict(value))
        raise ValueError(f"entropy_reg must be a dict, a bool or EntropyRegConfig, got {type(value).__name__}.")


@dataclass(frozen=True)
class PIConfig:
    """Architecture of one PI-GPT model; every field of spec §2, validated on construction.

    Presets: ``PIConfig.small()`` (L12 H12 d768), ``PIConfig.small_l18()`` (L18), ``PIConfig.tiny()``
    (L4 H4 d128 d_ff512 T64, byte vocabulary). Each accepts field overrides as keywords.
    """

    vocab_size: int
    context_length: int = 128  # training T; also the length of the temperature table
    n_positions: int | None = None  # None = context_length; the reference code used 1024 (params only)
    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768
    d_ff: int | None = None  # None = 4 * d_model; ignored when ffn_fused
    norm: str = "layernorm"
    norm_targets: tuple[str, ...] | None = None  # None = ("ffn",) for weight/spectral norm (paper's best)
    final_norm: str = "layernorm"  # kept by the reference code even in "LN-free" models
    layer_norm_eps: float = 1e-5
    ffn_activation: str = "gelu"  # GELU is the exact erf form; gelu_tanh is GPT-2's approximation (gelu_new)
    leaky_slope: float = 0.01
    learnable_slope_mode: str = "per_layer"
    ffn_fused: bool = False
    ffn_layers: int | None = None  # None = n_layer; AERO pruning keeps FFNs in the first ffn_layers blocks
    ffn_scaling: str = "none"
    ffn_scale_alpha_init: float = 1.0  # not published; the ancestor code's gains default to 1 (§14)
    ffn_scale_beta_init: float = 1.0
    attn_temperature: str = "none"
    temperature_shape: str = "head_position"
    temperature_init: float = 1e-2  # CodeParrot recipe; 1e-1 for Languini
    qk_bias: bool = True  # the reference has a bias on Q and K only
    vo_bias: bool = False
    ffn_bias: bool = False
    tie_embeddings: bool = True
    init_std: float = 0.02
    # spec §5 (no depth rescaling) or gpt2: residual projections (attn.o, FFN output) get init_std/sqrt(2L),
    # as GPT-2 and HF's GPT2PreTrainedModel initialise them
    init_scheme: str = "spec"
    embd_dropout: float = 0.0  # the reference accidentally ran with 0.1 on the embeddings
    entropy_reg: EntropyRegConfig = field(default_factory=EntropyRegConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entropy_reg", EntropyRegConfig.coerce(self.entropy_reg))
        if self.norm_targets is not None:  # canonical order, so equal target sets give equal configs
            targets = (self.norm_targets,) if isinstance(self.norm_targets, str) else tuple(self.norm_targets)
            if set(targets) <= set(NORM_TARGETS):
                targets = tuple(t for t in NORM_TARGETS if t in targets)
            object.__setattr__(self, "norm_targets", targets)
        self._validate_sizes()
        self._validate_switches()

    def _validate_sizes(self) -> None:
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            _positive_int(name, getattr(self, name))
        if self.n_positions is not None:
            _positive_int("n_positions", self.n_positions)
            if self.n_positions < self.context_length:
                raise ValueError(f"n_positions={self.n_positions} is smaller than context_length="
                                 f"{self.context_length}; use n_positions >= context_length (or leave it unset).")
        if self.d_model % self.n_head:
            divisors = [h for h in range(1, min(self.d_model, 64) + 1) if self.d_model % h == 0][-3:]
            raise ValueError(f"n_head={self.n_head} does not divide d_model={self.d_model}; choose an n_head that "
                             f"divides {self.d_model} (e.g. {' or '.join(map(str, divisors))}).")
        if self.d_ff is not None:
            _positive_int("d_ff", self.d_ff)
        if self.ffn_layers is not None:
            if isinstance(self.ffn_layers, bool) or not isinstance(self.ffn_layers, int) or self.ffn_layers < 0:
                raise ValueError(f"ffn_layers={self.ffn_layers!r} must be an integer in [0, n_layer={self.n_layer}].")
            if self.ffn_layers > self.n_layer:
                raise ValueError(f"ffn_layers={self.ffn_layers} > n_layer={self.n_layer}; use at most "
                                 f"{self.n_layer} (or None to keep an FFN in every block).")
        _positive_float("layer_norm_eps", self.layer_norm_eps)
        _positive_float("init_std", self.init_std)
        if not isinstance(self.embd_dropout, (int, float)) or not 0 <= self.embd_dropout < 1:
            raise ValueError(f"embd_dropout={self.embd_dropout!r} must be in [0, 1).")

    def _validate_switches(self) -> None:
        _choice("norm", self.norm, NORMS)
        _choice("final_norm", self.final_norm, FINAL_NORMS)
        _choice("ffn_activation", self.ffn_activation, ACTIVATIONS)
        _choice("learnable_slope_mode", self.learnable_slope_mode, SLOPE_MODES)
        _choice("ffn_scaling", self.ffn_scaling, FFN_SCALINGS)
        _choice("attn_temperature", self.attn_temperature, TEMPERATURES)
        _choice("temperature_shape", self.temperature_shape, TEMPERATURE_SHAPES)
        _choice("init_scheme", self.init_scheme, INIT_SCHEMES)
        for name in ("ffn_fused", "qk_bias", "vo_bias", "ffn_bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false.")
        if self.norm_targets is not None:
            if self.norm not in ("weightnorm", "spectralnorm"):
                raise ValueError(f"norm_targets={list(self.norm_targets)} is only used with norm='weightnorm' or "
                                 f"'spectralnorm' (got norm={self.norm!r}); drop norm_targets or change norm.")
            bad = [t for t in self.norm_targets if t not in NORM_TARGETS]
            if bad or not self.norm_targets:
                raise ValueError(f"norm_targets={list(self.norm_targets)} must be a non-empty subset of "
                                 f"{list(NORM_TARGETS)}.")
        if self.ffn_fused and self.ffn_activation != "identity":
            raise ValueError(f"ffn_fused=True needs ffn_activation='identity' (got {self.ffn_activation!r}); "
                             "a fused d x d FFN is only equivalent to an FFN without a nonlinearity.")
        if not isinstance(self.leaky_slope, (int, float)) or not math.isfinite(self.leaky_slope) or self.leaky_slope < 0:
            raise ValueError(f"leaky_slope={self.leaky_slope!r} must be a finite number >= 0.")
        _positive_float("ffn_scale_alpha_init", self.ffn_scale_alpha_init)
        _positive_float("ffn_scale_beta_init", self.ffn_scale_beta_init)
        if not isinstance(self.temperature_init, (int, float)) or not self.temperature_init > 0:
            raise ValueError(f"temperature_init={self.temperature_init!r} must be > 0 (it divides the attention "
                             "logits; paper: 1e-2 CodeParrot, 1e-1 Languini).")

    # ---- resolved values -------------------------------------------------------------------------------
    @property
    def n_pos(self) -> int:
        """Rows of the learned position table (``n_positions``, default ``context_length``)."""
        return self.n_positions if self.n_positions is not None else self.context_length

    @property
    def ffn_dim(self) -> int:
        """Hidden width of an unfused FFN (``d_ff``, default 4 * d_model)."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def n_ffn_layers(self) -> int:
        """Blocks that keep an FFN (``ffn_layers``, default all); the deeper ones are pruned."""
        return self.ffn_layers if self.ffn_layers is not None else self.n_layer

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head

    @property
    def targets(self) -> frozenset[str]:
        """Linear layers reparameterised by weight/spectral norm (empty for layernorm / none)."""
        if self.norm not in ("weightnorm", "spectralnorm"):
            return frozenset()
        return frozenset(self.norm_targets or ("ffn",))

    # ---- construction helpers --------------------------------------------------------------------------
    def replace(self, **changes: Any) -> PIConfig:
        """A copy with ``changes`` applied (validated; unknown field names raise with a suggestion)."""
        check_field_names(changes)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict that ``PIConfig.from_dict`` turns back into an equal config."""
        out = asdict(self)
        if out["norm_targets"] is not None:
            out["norm_targets"] = list(out["norm_targets"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PIConfig:
        check_field_names(data)
        data = dict(data)
        if data.get("norm_targets") is not None:
            data["norm_targets"] = tuple(data["norm_targets"])
        return cls(**data)

    @classmethod
    def small(cls, **overrides: Any) -> PIConfig:
        """GPT-2 small: L12 H12 d768, T128, CodeParrot-sized vocabulary (the paper's main setting)."""
        return cls._preset(dict(vocab_size=50_000, context_length=128, n_layer=12, n_head=12, d_model=768), overrides)

    @classmethod
    def small_l18(cls, **overrides: Any) -> PIConfig:
        """The deeper GPT-2 of 2501.03489 Table 8: L18 H12 d768."""
        return cls._preset(dict(vocab_size=50_000, context_length=128, n_layer=18, n_head=12, d_model=768), overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> PIConfig:
        """The 2-core CPU recipe (§9.2): L4 H4 d128 d_ff512, T64, byte-level vocabulary (256 ids)."""
        return cls._preset(dict(vocab_size=256, context_length=64, n_layer=4, n_head=4, d_model=128, d_ff=512),
                           overrides)

    @classmethod
    def _preset(cls, base: dict[str, Any], overrides: Mapping[str, Any]) -> PIConfig:
        check_field_names(overrides)
        return cls(**{**base, **overrides})


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PIConfig))


def check_field_names(names: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the closest field for any name that is not a ``PIConfig`` field."""
    for name in names:
        if name not in FIELD_NAMES:
            raise ValueError(f"Unknown PIConfig field {name!r}.{did_you_mean(name, FIELD_NAMES)} "
                             f"Valid fields: {', '.join(FIELD_NAMES)}.")

"""2PC communication measured under SPU on the tiny PI-GPT variants: the "measured" rows of ``pi_cost``.

The papers' rows (``cost.PUBLISHED``) are GPT-2-small measurements on BumbleBee; nothing else was ever
measured, so every other config was estimated. These rows come from running the network under SPU's
Cheetah 2PC protocol on this project's machines (``zoo.pi_measure`` through
``benchmarks/pi_measure_table.py``, which prints the literal below with ``--cost-rows``). A config
matches a row when its inference graph is the same: training-only switches (entropy regularization,
initial values) and reparameterisations folded at inference (weight/spectral norm) do not count.
"""
from __future__ import annotations

from functools import lru_cache

from zoo.models.pi_transformer.config import PIConfig
from zoo.models.pi_transformer.variants import config_for_name

ENGINE = "SPU 0.9.5 Cheetah 2PC, 2 local parties, FM64"
SOURCE = "benchmarks/pi_measure_table.py"

# (registry name, T) -> (bytes both parties sent, rounds = SPU send actions of the busier party)
MEASURED: dict[tuple[str, int], tuple[int, int]] = {
    ("pi-gpt2-tiny-sm-ln-g", 16): (655776165, 20841),
    ("pi-gpt2-tiny-ereg-sm-t-scfuffn", 16): (125671854, 3258),
    ("pi-gpt2-tiny-sm-ln-r", 16): (141889574, 6024),
    ("pi-gpt2-tiny-sm-ln", 16): (138396214, 5864),
    ("pi-gpt2-tiny-sm-g", 16): (640159907, 20417),
    ("pi-gpt2-tiny-sm-r", 16): (126287401, 5600),
    ("pi-gpt2-tiny-sm", 16): (122790644, 5440),
    ("pi-gpt2-tiny-sm-scffn", 16): (127938995, 5472),
    ("pi-gpt2-tiny-sm-scfuffn", 16): (123117188, 3246),
    ("pi-gpt2-tiny-sm-t-scfuffn", 16): (125672911, 3258),
    ("pi-gpt2-tiny-sm-wn-ffn", 16): (122793989, 5440),
    ("pi-gpt2-tiny-sm-sn-ffn", 16): (122787297, 5440),
    ("pi-gpt2-tiny-sm-ln-g", 32): (1012847643, 36101),
    ("pi-gpt2-tiny-ereg-sm-t-scfuffn", 32): (186756688, 8519),
    ("pi-gpt2-tiny-sm-ln", 32): (210067360, 8963),
    ("pi-gpt2-tiny-sm-g", 32): (981618202, 35605),
    ("pi-gpt2-tiny-sm-scffn", 32): (188895791, 8523),
    ("pi-gpt2-tiny-sm-scfuffn", 32): (181655227, 8499),
    ("pi-gpt2-tiny-sm-ln-g", 64): (2025494711, 73609),
    ("pi-gpt2-tiny-ereg-sm-t-scfuffn", 64): (372521771, 16886),
}


def inference_key(cfg: PIConfig, seq_len: int) -> tuple:
    """What decides the 2PC program of one forward at T = seq_len (the folded graph), nothing else."""
    return (cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.d_model, None if cfg.ffn_fused else cfg.ffn_dim,
            "layernorm" if cfg.norm == "layernorm" else "none", cfg.final_norm, cfg.ffn_activation, cfg.ffn_fused,
            cfg.n_ffn_layers, cfg.ffn_scaling != "none", cfg.attn_temperature, cfg.temperature_shape,
            cfg.qk_bias, cfg.vo_bias, cfg.ffn_bias, cfg.tie_embeddings, seq_len)


@lru_cache(maxsize=1)
def _by_key() -> dict[tuple, tuple[str, int, int]]:
    out = {}
    for (name, T), (n_bytes, rounds) in MEASURED.items():
        cfg = config_for_name(name, context_length=max(T, 64))
        out[inference_key(cfg, T)] = (name, n_bytes, rounds)
    return out


def measured_row(cfg: PIConfig, seq_len: int) -> tuple[str, int, int] | None:
    """(measured model, bytes, rounds) for a config with the same inference graph at T, else None."""
    return _by_key().get(inference_key(cfg, seq_len))

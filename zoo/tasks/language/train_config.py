"""Keys of a language-model training recipe (``configs/pi_*.yaml``) on top of the shared ``TrainConfig``.

Defaults are the CPU recipe of spec pi_transformer.md §9.2 (AdamW 1e-3, betas (0.9, 0.999), wd 0.1 on
the §5 groups, linear decay to 0, clip 1.0, batch 32 of T = 64, validation every 100 steps on 50
held-out batches); ``configs/pi_codeparrot.yaml`` and ``configs/pi_languini.yaml`` spell out the paper's
settings (§9.1). The generic keys keep their meaning: ``batch`` is the global number of sequences per
iteration, ``momentum`` is Adam's beta1, ``warmup_steps`` the linear warm-up length.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo.tasks.base.recipe import TrainConfig, _check_choice, _check_range


@dataclass
class LMTrainConfig(TrainConfig):
    """Language-modelling keys (corpus, tokenizer, context, entropy regularization, metrics cadence)."""

    data: str = "stdlib"  # corpus: stdlib | folder of text files | list:FILE | hf:DIR (datasets) | languini:DIR
    val_data: str = ""  # a second corpus used entirely as the held-out split ('' = hash split of data)
    val_fraction: float = 0.02  # held-out share of the hash split (sha256 of each document's relative path)
    text_column: str = ""  # hf: datasets column holding the text ('' = content or text)
    max_train_docs: int = 0  # keep at most this many training documents (datasets shuffle(seed=0) order); 0 = all
    max_val_docs: int = 0  # keep at most this many held-out documents; 0 = all
    tokenizer: str = "byte"  # byte (256 ids) | bpe (trained on the train split) | pretokenized | path/tokenizer.json
    vocab_size: int = 0  # BPE vocabulary to train; 0 = the tokenizer's own size (byte: 256)
    cache: str = ""  # token-file cache folder ('' = $EFFZOO_CACHE/lm or ~/.cache/effzoo/lm)
    context_length: int = 0  # T, tokens per training sequence; 0 = the model's default (tiny 64, small 128)
    temperature_init: float = 0.0  # learnable-temperature init; 0 = the variant's (1e-2 CodeParrot, 1e-1 Languini)
    ereg_lambda: float = -1.0  # entropy-regularization lambda; < 0 = the variant's (1e-5; Languini 5e-5)
    ereg_gamma: float = -1.0  # tolerance as a fraction of ln T; < 0 = the variant's (0.2)
    ereg_scale: bool = True  # lambda_eff = lambda * 128*128 / (B*T) per micro-batch (spec §6.2)
    adam_beta2: float = 0.999  # Adam beta2 (Languini: 0.95); beta1 is `momentum`
    adam_eps: float = 1e-8  # Adam epsilon
    val_batches: int = 50  # held-out batches of `batch` chunks per validation (fixed-seed sample); 0 = all
    metrics_every_steps: int = 100  # entropy / NaN / temperature / threshold logging cadence (0 = off)

    # -- LM defaults for the shared keys (spec §9.2) --
    epochs: int = 1  # passes over the training chunks (max_steps usually decides)
    max_steps: int = 300  # iterations; the linear decay spans them
    batch: int = 32  # sequences per iteration, summed over torchrun processes
    workers: int = 0  # chunks are slices of a memory map: loading in the main process is fastest
    optimizer: str = "AdamW"  # AdamW | Adam (Languini: Adam without weight decay)
    lr0: float = 1e-3  # peak learning rate
    lrf: float = 0.0  # final lr as a fraction of lr0: linear decay to 0
    lr_schedule: str = "linear"  # linear | cosine (Languini)
    lr_per_epoch: bool = False  # the LM schedule advances every iteration
    momentum: float = 0.9  # Adam beta1
    weight_decay: float = 0.1  # on 2-D weights only (spec §5 groups)
    nbs: int = 0  # no nominal-batch scaling of weight decay or accumulation
    accumulate: int = 1  # iterations per optimizer step (gradient accumulation)
    warmup_epochs: float = 0.0  # (unused by LM recipes: warm-up is given in steps)
    warmup_steps: int = 15  # 5 % of max_steps linear warm-up
    grad_clip: float = 1.0  # max gradient L2 norm (0 = off)
    amp_dtype: str = "bfloat16"  # CUDA autocast dtype (the CodeParrot recipe: float16)
    ema: bool = False  # no weight averaging in the papers' LM recipes
    val_every_steps: int = 100  # validate every this many iterations (and at the end)
    log_every_steps: int = 10  # steps.jsonl cadence for CE and lambda * L_ent

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("max_train_docs", "max_val_docs", "vocab_size", "context_length", "val_batches",
                    "metrics_every_steps", "temperature_init", "adam_eps"):
            _check_range(self, key, 0)
        _check_range(self, "val_fraction", 0, 0.99)
        _check_range(self, "adam_beta2", 0, 0.99999)
        _check_choice(self, "optimizer", ("AdamW", "Adam"))
        if not self.data:
            raise ValueError("data is empty; use stdlib, a folder of text files, list:FILE, hf:DIR or languini:DIR.")

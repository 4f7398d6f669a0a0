"""Training configs: flat dataclasses that YAML recipes in ``configs/`` map onto key for key.

``TrainConfig`` holds what every task shares (schedule, optimizer, precision, EMA, checkpointing,
logging); a task subclasses it with its own keys (``DetectionTrainConfig`` adds image size, loss gains,
augmentation). :func:`load_config` reads a recipe, applies command-line overrides, and refuses an unknown
key with the closest valid one, a value of the wrong type, or a value out of range -- before anything
is built, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from zoo.core.errors import did_you_mean

C = TypeVar("C", bound="TrainConfig")
_YAML12_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  # exponent forms YAML 1.1 leaves as text


@dataclass
class TrainConfig:
    """Keys shared by every training task. Comments give the meaning; the YAML recipes repeat them."""

    model: str = ""  # registry name (zoo list); the CLI's MODEL argument fills it
    data: str = ""  # dataset / corpus; meaning defined by the task
    epochs: int = 100  # passes over the training set (the LR schedule spans them)
    max_steps: int = 0  # > 0: stop after this many iterations (batches) instead; the schedule spans max_steps
    batch: int = 16  # images/sequences per iteration, summed over all processes (torchrun splits it)
    workers: int = 2  # DataLoader worker processes per training process (0: load in the main process)
    device: str = ""  # '' = CUDA when available else CPU; 'cpu', 'cuda', 'cuda:1', or a GPU index
    seed: int = 0  # seeds model init, data order and every augmentation
    deterministic: bool = True  # ask torch for deterministic kernels (warns where none exists)
    out: str = ""  # run folder; '' = runs/train/<model>[-N], the first that does not exist yet
    optimizer: str = "SGD"  # SGD (Nesterov) | AdamW | Adam
    lr0: float = 0.01  # peak learning rate
    lrf: float = 0.01  # final learning rate as a fraction of lr0
    lr_schedule: str = "linear"  # linear | cosine decay from lr0 to lr0 * lrf
    lr_per_epoch: bool = True  # True: lr changes once per epoch (ultralytics); False: every iteration
    # effzoo | ultralytics. ultralytics = parity mode, ultralytics 8.1.4's BaseTrainer rules exactly: warm-up
    # max(round(warmup_epochs * nb), 100) iterations (none when warmup_epochs = 0), warm-up lr towards
    # lr0 * lf(epoch), then lr0 * lf(epoch - 1) (its LambdaLR lags one epoch), accumulation ramped to
    # nbs / batch (zoo.engine.optim.UltralyticsSchedule). Needs lr_per_epoch, warmup_steps 100, nbs > 0.
    schedule: str = "effzoo"
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 0.0005  # decay of conv/linear weights, scaled by batch * accumulate / nbs when nbs > 0
    nbs: int = 64  # nominal batch size: accumulate gradients over round(nbs / batch) iterations; 0 = off
    accumulate: int = 0  # > 0: fixed number of iterations per optimizer step (overrides nbs)
    warmup_epochs: float = 3.0  # linear warm-up length in epochs ...
    warmup_steps: int = 100  # ... but at least this many iterations (0 and 0: no warm-up)
    warmup_momentum: float = 0.8  # SGD momentum at iteration 0, ramped to `momentum` during warm-up
    warmup_bias_lr: float = 0.0  # bias lr at iteration 0 (other groups start from 0)
    grad_clip: float = 10.0  # max gradient L2 norm (0 = no clipping)
    amp: bool = True  # mixed precision on CUDA (always full precision on CPU)
    amp_dtype: str = "float16"  # float16 (with loss scaling) | bfloat16
    compile: bool = False  # torch.compile the model
    ema: bool = True  # keep an exponential moving average of the weights (validated and saved)
    ema_decay: float = 0.9999  # EMA decay; the effective decay ramps up as decay * (1 - exp(-updates / ema_tau))
    ema_tau: float = 2000.0  # EMA ramp length in optimizer steps
    val: bool = True  # validate at the end of every val_period-th epoch (and of the run)
    val_period: int = 1  # validate every this many epochs
    val_every_steps: int = 0  # > 0: also validate every this many iterations
    save_period: int = 1  # write the resumable checkpoint every this many epochs (always at validations and the end)
    save_every_steps: int = 0  # > 0: also write the resumable checkpoint every this many iterations
    log_every_steps: int = 1  # write steps.jsonl every this many iterations
    plots: bool = True  # draw results.png (at the end of the run and at most every 5 minutes during it)

    def __post_init__(self) -> None:
        _check_range(self, "epochs", 1)
        _check_range(self, "max_steps", 0)
        _check_range(self, "batch", 1)
        _check_range(self, "workers", 0)
        _check_range(self, "nbs", 0)
        _check_range(self, "accumulate", 0)
        _check_range(self, "val_period", 1)
        _check_range(self, "save_period", 1)
        _check_range(self, "log_every_steps", 1)
        for key in ("lrf", "weight_decay", "warmup_epochs", "warmup_steps", "grad_clip", "val_every_steps",
                    "save_every_steps", "warmup_bias_lr"):
            _check_range(self, key, 0)
        _check_range(self, "lr0", 0, 1)  # a fraction, as ultralytics checks it: lr0=1e8 only trains to NaN
        _check_range(self, "momentum", 0, 1)
        _check_range(self, "warmup_momentum", 0, 1)
        _check_range(self, "ema_decay", 0, 1)
        _check_choice(self, "optimizer", ("SGD", "AdamW", "Adam"))
        _check_choice(self, "lr_schedule", ("linear", "cosine"))
        _check_choice(self, "amp_dtype", ("float16", "bfloat16"))
        _check_choice(self, "schedule", SCHEDULES)
        if self.schedule == "ultralytics":
            _check_ultralytics_schedule(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SCHEDULES = ("effzoo", "ultralytics")

# keys whose value ultralytics 8.1.4 fixes: (required value, why)
_ULTRALYTICS_FIXED = {"lr_per_epoch": (True, "its LambdaLR steps once per epoch"),
                      "warmup_steps": (100, "its warm-up lasts at least 100 iterations"),
                      "max_steps": (0, "it runs whole epochs; set epochs"),
                      "accumulate": (0, "it accumulates round(nbs / batch) batches")}


def _check_ultralytics_schedule(cfg: Any) -> None:
    """Refuse keys that contradict the parity schedule instead of ignoring them."""
    for key, (want, why) in _ULTRALYTICS_FIXED.items():
        if getattr(cfg, key) != want:
            raise ValueError(f"schedule='ultralytics' needs {key}={want!r} ({why}); got {key}={getattr(cfg, key)!r}. "
                             f"Drop {key} from the recipe or use schedule='effzoo'.")
    if cfg.nbs < 1:
        raise ValueError("schedule='ultralytics' needs nbs >= 1 (it scales weight decay and accumulation by "
                         f"nbs / batch); got nbs={cfg.nbs}.")


def _check_range(cfg: Any, key: str, low: float | None = None, high: float | None = None) -> None:
    value = getattr(cfg, key)
    if isinstance(value, float) and not math.isfinite(value):  # inf passes 'value >= 0' and trains to NaN
        raise ValueError(f"{key}={value!r} is not a finite number.")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{key}={value!r} is out of range; {key} must be {bounds}.")


def _check_choice(cfg: Any, key: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, key)
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not supported; choose one of {', '.join(choices)}.")


def config_keys(cls: type[TrainConfig]) -> list[str]:
    return [f.name for f in fields(cls)]


def _coerce(cls: type[TrainConfig], key: str, value: Any, source: str) -> Any:
    """Check ``value`` against the field's declared type (int/float/bool/str); ints are accepted as floats."""
    hints = typing.get_type_hints(cls)
    want = hints[key]
    if want in (int, float) and isinstance(value, str) and _YAML12_NUMBER.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 (PyYAML) reads '1e8' and '5e-4' as strings; YAML 1.2 as numbers
    if want is bool:
        if isinstance(value, bool):
            return value
    elif want is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif want is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif want is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    else:  # pragma: no cover - every field is one of the four types above
        return value
    raise ValueError(f"{source}: {key}={value!r} should be of type {want.__name__}.")


def check_keys(cls: type[TrainConfig], values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` with types checked and coerced; an unknown key raises ``ValueError`` naming ``source``."""
    keys = config_keys(cls)
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in keys:
            raise ValueError(f"{source}: unknown key {key!r}.{did_you_mean(key, keys)} "
                             f"Valid keys are the fields of {cls.__name__}.")
        clean[key] = _coerce(cls, key, value, source)
    return clean


def config_from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Build ``cls`` from a flat dict; unknown keys and wrong types raise ``ValueError`` naming the key."""
    return cls(**check_keys(cls, values, source))


def load_config(cls: type[C], path: str | os.PathLike[str] | None = None,
                overrides: dict[str, Any] | None = None) -> C:
    """Read a YAML recipe into ``cls`` and apply ``overrides`` (``None`` values are ignored).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: malformed YAML, a non-mapping document, an unknown key (with the closest valid key),
            a wrong type or an out-of-range value.
    """
    import yaml

    values: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err}).") from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a recipe must be a flat mapping of keys to values.")
        values.update(check_keys(cls, loaded, source))  # key and type errors named against the file
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(check_keys(cls, given, "overrides (--set / flags)"))  # blamed on the flags, not on the file
    return config_from_dict(cls, values, source)

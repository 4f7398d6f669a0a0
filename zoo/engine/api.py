"""``zoo.train``: the one Python entry point behind ``zoo train`` for every trainable model.

It resolves the recipe (YAML + keyword overrides, or the state of a run to resume), picks the task from
the model card, checks everything a user can get wrong *before* any training starts (unknown model or
key, a resume folder from another model, an output folder that already holds a run, bad data), and
runs the :class:`~zoo.engine.trainer.Trainer`. Examples::

    import zoo
    result = zoo.train("leyolo-nano", config="configs/leyolo_synthetic.yaml", out="runs/nano")
    print(result.metrics["metrics/mAP50-95"], result.best)
    zoo.train(resume="runs/nano")          # continue a killed run exactly where its state was saved
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.core import distributed as D
from zoo.core.fileio import check_output_path
from zoo.core.registry import get_card
from zoo.engine.checkpointing import load_state, state_path
from zoo.engine.trainer import Trainer, TrainResult
from zoo.tasks import get_task
from zoo.tasks.base.recipe import TrainConfig, check_keys, config_from_dict, config_keys, load_config
from zoo.tasks.base.training import Task

# Settings that may differ when resuming: they change where/how fast the run executes, not its numbers.
RESUME_MAY_CHANGE = ("device", "workers")


def train(model: str | None = None, *, config: str | os.PathLike[str] | None = None,
          resume: str | os.PathLike[str] | None = None,
          callbacks: dict[str, list[Callable[[Trainer], Any]]] | None = None,
          **overrides: Any) -> TrainResult:
    """Train a registered model, or resume a run.

    Args:
        model: registry name (``leyolo-nano``); optional with ``resume`` (taken from the run) or when the
            recipe names it.
        config: a YAML recipe from ``configs/`` (flat keys of the task's config dataclass).
        resume: a run folder written by an earlier ``train`` (it holds ``weights/last.state.pt``).
        callbacks: engine callbacks (see :class:`~zoo.engine.trainer.Trainer`).
        **overrides: any config key (``epochs=3``, ``batch=8``, ``imgsz=320``, ``data=...``, ``out=...``);
            ``None`` values are ignored so unset CLI flags fall through to the recipe.

    Returns:
        :class:`~zoo.engine.trainer.TrainResult` (run folder, last/best weights, final metrics, history).

    Raises:
        UnknownModelError: unknown model name.
        ValueError: unknown config key (with the closest key), bad value, no trainer for the model's task,
            conflicting model names, or a setting that differs from the run being resumed.
        CheckpointError: the resume folder holds another model's run, or an unreadable state.
        DataError: empty dataset, labels outside the model's classes, malformed annotations.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if resume is not None:
        task, run_dir, state = _resume(model, config, resume, overrides)
    else:
        task, run_dir, state = _fresh(model, config, overrides), None, None
    D.setup_distributed(task.config.device)
    if run_dir is None:  # every rank checks (same error everywhere), rank 0's choice wins
        run_dir = D.broadcast_object(_new_run_dir(task.config))
    return Trainer(task, run_dir, resume=state, callbacks=callbacks).fit()


def _fresh(model: str | None, config: str | os.PathLike[str] | None, overrides: dict[str, Any]) -> Task:
    recipe_model = _recipe_model(config)
    if model and recipe_model and model != recipe_model:
        raise ValueError(f"The recipe {config} is for model {recipe_model!r} but {model!r} was given; "
                         "drop one of them.")
    name = model or recipe_model
    if not name:
        raise ValueError("Which model? Pass MODEL (e.g. leyolo-nano; see zoo list) or set `model:` in the recipe.")
    card = get_card(name)
    cls = get_task(card.task).train_task
    cfg = load_config(cls.config_class, config, {**overrides, "model": card.name})
    return cls(cfg)


def _recipe_model(config: str | os.PathLike[str] | None) -> str:
    if config is None:
        return ""
    import yaml

    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err}).") from err
    return str(data.get("model") or "") if isinstance(data, dict) else ""


def _resume(model: str | None, config: str | os.PathLike[str] | None, resume: str | os.PathLike[str],
            overrides: dict[str, Any]) -> tuple[Task, Path, Any]:
    if config is not None:
        raise ValueError("A resumed run keeps its own recipe; drop --config (the run's settings are in "
                         f"{Path(resume) / 'args.yaml'}).")
    if model is not None:
        get_card(model)  # an unknown name is reported as such, not as a mismatch
    state = load_state(resume, expect_model=model)
    cls = get_task(get_card(state.model_name).task).train_task
    stored = dict(state.config)
    overrides = check_keys(cls.config_class, overrides, "overrides (--set / flags)")  # unknown keys are errors
    for key, value in overrides.items():
        if key in RESUME_MAY_CHANGE:
            stored[key] = value
        elif key in config_keys(cls.config_class) and stored.get(key) != value:
            raise ValueError(f"Resuming continues the run with its own settings, but {key}={value!r} differs from "
                             f"the run's {key}={stored.get(key)!r}; drop the flag or start a new run.")
    stored["out"] = str(Path(resume))
    cfg = config_from_dict(cls.config_class, stored, f"{state_path(resume)} config")
    return cls(cfg), Path(resume), state


def _new_run_dir(cfg: TrainConfig) -> Path:
    """``cfg.out`` if it holds no run yet, else an error; default: the first free ``runs/train/<model>[-N]``."""
    if cfg.out:
        out = check_output_path(cfg.out, folder=True, what="out")  # a parent that is a file: refused before training
        if state_path(out).exists():
            raise ValueError(f"{out} already holds a training run; continue it with --resume {out} or choose "
                             "another --out.")
        return out
    base = Path("runs") / "train" / cfg.model
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{cfg.model}-{n}")
        n += 1
    return candidate

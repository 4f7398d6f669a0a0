"""``zoo.distill``: train a PI-GPT student against a trained teacher, or resume such a run.

The same engine as ``zoo.train`` (schedule, checkpoints, exact resume, DDP under torchrun); only the task
differs (:class:`~zoo.tasks.language.distill.DistillTask`). Examples::

    import zoo
    zoo.distill("pi-gpt2-tiny-ereg-sm-t-scfuffn", teacher="pi-gpt2-tiny-sm-ln-g",
                teacher_weights="runs/teacher/weights/best.safetensors",
                config="configs/pi_distill_tiny.yaml", out="runs/distill")
    zoo.distill(resume="runs/distill")     # continue a killed run; the teacher is reloaded from its weights
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.core import distributed as D
from zoo.core.errors import CheckpointError
from zoo.core.registry import get_card
from zoo.engine.api import RESUME_MAY_CHANGE, _new_run_dir
from zoo.engine.checkpointing import load_state, state_path
from zoo.engine.trainer import Trainer, TrainResult
from zoo.tasks.base.recipe import config_from_dict, config_keys, load_config
from zoo.tasks.language.distill import DistillTask
from zoo.tasks.language.distill_config import DistillTrainConfig


def distill(student: str | None = None, *, teacher: str | None = None,
            teacher_weights: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None,
            resume: str | os.PathLike[str] | None = None,
            callbacks: dict[str, list[Callable[[Trainer], Any]]] | None = None, **overrides: Any) -> TrainResult:
    """Distil ``teacher`` (with ``teacher_weights``) into a freshly initialised ``student``.

    Args:
        student: registry name of the student (a ``pi-gpt2-*`` model); optional with ``resume``.
        teacher: registry name of the teacher; ``teacher_weights``: its effzoo safetensors or HF folder.
        config: a YAML recipe (keys of :class:`~zoo.tasks.language.distill_config.DistillTrainConfig`:
            the LM keys plus ``teacher``, ``teacher_weights``, ``alpha``, ``tau``, ``attn_entropy_weight``).
        resume: a distillation run folder to continue.
        **overrides: any recipe key (``max_steps=300``, ``alpha=0.7``, ``out=...``); ``None`` is ignored.

    Raises:
        ValueError: unknown key (with the closest one), bad value, a resume that changes a setting.
        CheckpointError: unreadable teacher weights, a teacher vocabulary other than the student's data.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key, value in (("teacher", teacher), ("teacher_weights", teacher_weights)):
        if value is not None:
            overrides[key] = os.fspath(value)
    if resume is not None:
        task, run_dir, state = _resume(student, config, resume, overrides)
    else:
        if not student:
            raise ValueError("Which student? Pass STUDENT (e.g. pi-gpt2-tiny-sm-scfuffn; see zoo list 'pi-*').")
        card = get_card(student)
        cfg = load_config(DistillTrainConfig, config, {**overrides, "model": card.name})
        cfg.check_teacher()
        get_card(cfg.teacher)  # an unknown teacher fails here, with suggestions, before any data is read
        task, run_dir, state = DistillTask(cfg), None, None
    D.setup_distributed(task.config.device)
    if run_dir is None:
        run_dir = D.broadcast_object(_new_run_dir(task.config))
    return Trainer(task, run_dir, resume=state, callbacks=callbacks).fit()


def _resume(student: str | None, config: str | os.PathLike[str] | None, resume: str | os.PathLike[str],
            overrides: dict[str, Any]) -> tuple[DistillTask, Path, Any]:
    if config is not None:
        raise ValueError(f"A resumed run keeps its own recipe; drop --config (see {Path(resume) / 'args.yaml'}).")
    state = load_state(resume, expect_model=student)
    stored = dict(state.config)
    if "teacher" not in stored:
        raise CheckpointError(f"{state_path(resume)} is a plain training run, not a distillation; continue it with "
                              f"zoo train --resume {resume}.")
    for key, value in overrides.items():
        if key in RESUME_MAY_CHANGE:
            stored[key] = value
        elif key in config_keys(DistillTrainConfig) and stored.get(key) != value:
            raise ValueError(f"Resuming continues the run with its own settings, but {key}={value!r} differs from "
                             f"the run's {key}={stored.get(key)!r}; drop the flag or start a new run.")
    stored["out"] = str(Path(resume))
    cfg = config_from_dict(DistillTrainConfig, stored, f"{state_path(resume)} config")
    return DistillTask(cfg), Path(resume), state

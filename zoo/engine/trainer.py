"""The training loop shared by every task: processes, schedule, precision, EMA, logs, checkpoints, resume.

Single process::
    zoo train leyolo-nano --config configs/leyolo_synthetic.yaml

Distributed (DDP, one process per GPU, or gloo on CPU)::
    torchrun --nproc_per_node 4 -m zoo train leyolo-nano --config configs/leyolo_coco.yaml --data coco.yaml

Semantics worth knowing:

* ``batch`` is the global batch; each of the N processes loads ``batch // N``. DDP averages gradients, and
  tasks normalise their losses with global quantities, so N processes compute the gradient one process
  would compute on the concatenated batch. Gradients are all-reduced after every backward (no
  ``no_sync``), so that mid-accumulation gradients are the same on all ranks and a checkpoint taken there
  is exact.
* Iterations count batches. The learning rate, momentum and accumulation are pure functions of the
  iteration (``zoo.engine.optim.Schedule``), the data order is a pure function of (seed, epoch), and every
  augmentation draws from a generator seeded by (seed, epoch, sample). A checkpoint therefore only needs
  the iteration, weights, optimizer/EMA/scaler state, pending gradients and RNG states, and a resumed run
  reproduces the uninterrupted loss sequence bit for bit on CPU.
* Only rank 0 writes (logs, plots, checkpoints) and shows progress bars.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from zoo.core import distributed as D
from zoo.core.errors import TrainingDivergedError, ZooError
from zoo.core.fileio import write_text_atomic
from zoo.core.rng import capture_rng_state, restore_rng_state, seed_everything
from zoo.core.version import __version__
from zoo.engine.checkpointing import TrainState, save_state
from zoo.engine.ema import ModelEMA
from zoo.engine.optim import (Schedule, UltralyticsSchedule, apply_schedule, build_optimizer, count_params,
                              param_groups)
from zoo.engine.results import ResultsTable, StepLog
from zoo.engine.sampler import ResumableSampler
from zoo.tasks.base.training import StepContext, StopTraining, Task

logger = logging.getLogger(__name__)

PLOT_EVERY_S = 300.0  # results.png is redrawn at most this often during a run, and always at its end


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind.

    Attributes:
        run_dir: the run folder.
        last: deployable weights of the last checkpoint.
        best: deployable weights of the best validation, or None when never validated.
        metrics: metrics of the last validation ({} when never validated).
        best_fitness: best fitness seen (None when never validated).
        history: the rows of results.csv.
        iterations: iterations done.
    """

    run_dir: Path
    last: Path
    best: Path | None
    metrics: dict[str, float]
    best_fitness: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 0


class Trainer:
    """Runs a :class:`~zoo.tasks.base.training.Task` to completion.

    Args:
        task: the task (its ``config`` is the run's config).
        run_dir: the run folder (already checked by the caller: new, or the resumed run's folder).
        resume: the state of the run to continue, or None for a fresh run.
        callbacks: event name -> callables taking the trainer. Events: ``on_train_start``,
            ``on_before_optimizer_step`` (gradients unscaled, not yet clipped), ``on_step_end``,
            ``on_validation_end``, ``on_epoch_end``, ``on_train_end``. Raising
            :class:`~zoo.tasks.base.training.StopTraining` saves the state and ends the run. Callbacks run on every
            rank; under DDP a callback that stops must stop on all ranks at the same iteration.
    """

    def __init__(self, task: Task, run_dir: str | Path, *, resume: TrainState | None = None,
                 callbacks: dict[str, list[Callable[[Trainer], Any]]] | None = None) -> None:
        self.task = task
        self.cfg = task.config
        self.run_dir = Path(run_dir)
        self.resume_state = resume
        self.callbacks = callbacks or {}
        self.iteration = 0
        self.last_opt_step = -1
        self.best_fitness: float | None = None
        self.metrics: dict[str, float] = {}
        self.epoch_sum: torch.Tensor | None = None  # float64 sums of the loss items over the current epoch
        self.epoch_count = 0
        self.epoch_closed = True  # the end-of-epoch validation/checkpoint of the current epoch is done
        self.last_plot = time.monotonic()

    # ------------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train; on return the last state, last/best weights, results.csv and results.png are written."""
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            return self._fit()
        finally:  # the switch is process-wide; give it back (only when changed: toggling it imports inductor)
            if torch.are_deterministic_algorithms_enabled() != was_deterministic:
                torch.use_deterministic_algorithms(was_deterministic)

    def _fit(self) -> TrainResult:
        cfg, task = self.cfg, self.task
        self.dist = D.setup_distributed(cfg.device)
        self.device = self.dist.device
        # CPU kernels are deterministic already; the torch switch (which imports inductor, seconds) is for CUDA
        seed_everything(cfg.seed + self.dist.rank, deterministic=cfg.deterministic and self.device.type == "cuda")
        task.setup(self.dist)  # bad input fails here, on every rank, before anything is written
        model = task.build_model().to(self.device).train()
        self._setup_data()
        self._setup_optimization(model)
        if self.resume_state is not None:
            self._load_state(model, self.resume_state)
        self.model = model
        if cfg.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.train_model = D.wrap_ddp(model, self.dist, task.example_input(self.device))
        if self.dist.is_main:
            (self.run_dir / "weights").mkdir(parents=True, exist_ok=True)
            resumed_at = self.iteration if self.resume_state is not None else None
            self.step_log = StepLog(self.run_dir / "steps.jsonl", resumed_at)
            self.results = ResultsTable(self.run_dir / "results.csv", resumed_at)
            self._write_args()
        for cb in self.callbacks.get("on_train_start", []):
            cb(self)
        try:
            self._loop()
        except StopTraining:
            logger.info("training stopped by a callback at iteration %d", self.iteration)
            self._save_checkpoint(validated=False)
        if self.dist.is_main and self.cfg.plots:
            self.results.plot(self.run_dir / "results.png", title=f"{self.cfg.model} - {self.run_dir.name}")
        for cb in self.callbacks.get("on_train_end", []):
            cb(self)
        D.barrier()
        weights = self.run_dir / "weights"
        best = weights / "best.safetensors"
        return TrainResult(run_dir=self.run_dir, last=weights / "last.safetensors",
                           best=best if best.exists() else None, metrics=dict(self.metrics),
                           best_fitness=self.best_fitness,
                           history=list(self.results.rows) if self.dist.is_main else [],
                           iterations=self.iteration)

    # -- set-up -----------------------------------------------------------------------------------
    def _setup_data(self) -> None:
        cfg, world = self.cfg, self.dist.world_size
        if cfg.batch % world:
            raise ValueError(f"batch={cfg.batch} is not divisible by the {world} processes; "
                             f"use a multiple of {world}.")
        self.local_batch = cfg.batch // world
        dataset = self.task.train_dataset()
        self.sampler = ResumableSampler(len(dataset), self.local_batch, rank=self.dist.rank, world_size=world,
                                        shuffle=True, seed=cfg.seed, with_epoch=self.task.epoch_keys)
        # Own generator: DataLoader draws its workers' base seed at every iter(); from the global RNG that
        # draw would shift dropout etc. of a resumed run against the uninterrupted one.
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_size=self.local_batch, sampler=self.sampler,
                                 num_workers=cfg.workers, collate_fn=self.task.collate,
                                 pin_memory=self.device.type == "cuda", drop_last=False,
                                 generator=self.loader_generator)
        self.iters_per_epoch = self.sampler.batches_per_epoch
        if cfg.max_steps:
            self.total_iters = cfg.max_steps
            self.epochs = math.ceil(cfg.max_steps / self.iters_per_epoch)
        else:
            self.epochs = cfg.epochs
            self.total_iters = cfg.epochs * self.iters_per_epoch

    def _setup_optimization(self, model: nn.Module) -> None:
        cfg = self.cfg
        if cfg.accumulate:
            accumulate, ramp = cfg.accumulate, False
        elif cfg.nbs:
            accumulate, ramp = max(round(cfg.nbs / cfg.batch), 1), True
        else:
            accumulate, ramp = 1, False
        decay = cfg.weight_decay * cfg.batch * accumulate / cfg.nbs if cfg.nbs else cfg.weight_decay
        groups = self.task.param_groups(model, decay)
        if groups is None:
            groups = param_groups(model, decay)
        self.optimizer = build_optimizer(groups, cfg.optimizer, cfg.lr0, cfg.momentum)
        logger.info("optimizer %s lr0=%g momentum=%g groups (bias, decay=%g, no_decay) tensors %s",
                    cfg.optimizer, cfg.lr0, cfg.momentum, decay, count_params(groups))
        parity = cfg.schedule == "ultralytics"  # ultralytics: no warm-up at all when warmup_epochs = 0
        warmup = max(round(cfg.warmup_epochs * self.iters_per_epoch), cfg.warmup_steps) \
            if (cfg.warmup_epochs or (cfg.warmup_steps and not parity)) else 0
        rules = dict(lr0=cfg.lr0, lrf=cfg.lrf, shape=cfg.lr_schedule, per_epoch=cfg.lr_per_epoch,
                     iters_per_epoch=self.iters_per_epoch, total_iters=self.total_iters, epochs=self.epochs,
                     warmup_iters=warmup, warmup_bias_lr=cfg.warmup_bias_lr, momentum=cfg.momentum,
                     warmup_momentum=cfg.warmup_momentum, accumulate=accumulate, ramp_accumulate=ramp)
        self.schedule = UltralyticsSchedule(**rules, accumulate_ramp_end=cfg.nbs / cfg.batch) if parity \
            else Schedule(**rules)
        cuda = self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
        self.use_amp = cfg.amp and cuda
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.ema = ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def _load_state(self, model: nn.Module, state: TrainState) -> None:
        model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.ema is not None:
            if state.ema is None:
                raise ZooError("The resumed run has no EMA state but ema=True; the config does not match the run.")
            self.ema.load_state_dict(state.ema)
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        params = dict(model.named_parameters())
        for name, grad in state.task_state.get("_engine", {}).get("grads", {}).items():
            params[name].grad = grad.to(self.device)
        loop = state.task_state.get("_engine", {})
        self.epoch_sum = loop.get("epoch_sum")
        self.epoch_count = int(loop.get("epoch_count", 0))
        self.epoch_closed = bool(loop.get("epoch_closed", True))
        self.task.load_state_dict({k: v for k, v in state.task_state.items() if k != "_engine"})
        self.iteration = state.iteration
        self.last_opt_step = state.last_opt_step
        self.best_fitness = state.best_fitness
        self.metrics = dict(state.metrics)
        if state.rng:
            restore_rng_state(state.rng[min(self.dist.rank, len(state.rng) - 1)])
        logger.info("resumed %s at iteration %d (epoch %d)", self.run_dir, self.iteration,
                    self.iteration // self.iters_per_epoch)

    def _write_args(self) -> None:
        import yaml


        text = yaml.safe_dump(self.cfg.to_dict(), sort_keys=False)
        write_text_atomic(self.run_dir / "args.yaml", text)

    # -- loop ---------------------------------------------------------------------------------------
    def _ctx(self, epoch: int) -> StepContext:
        return StepContext(dist=self.dist, epoch=epoch, epochs=self.epochs, iteration=self.iteration,
                           accumulate=self.schedule.accumulate_at(self.iteration), run_dir=self.run_dir,
                           autocast=self._autocast)

    def _loop(self) -> None:
        cfg = self.cfg
        start_epoch, skip = divmod(self.iteration, self.iters_per_epoch)
        if skip == 0 and start_epoch > 0 and not self.epoch_closed:
            self._end_epoch(start_epoch - 1)  # resumed from a checkpoint taken just before an epoch's end
        for epoch in range(start_epoch, self.epochs):
            if self.iteration >= self.total_iters:
                break
            self.task.on_epoch_start(epoch, self._ctx(epoch))
            self.sampler.set_epoch(epoch, skip if epoch == start_epoch else 0)
            self.loader_generator.manual_seed(cfg.seed * 1000003 + epoch * 101 + self.dist.rank)
            if epoch != start_epoch or skip == 0:
                self.epoch_sum, self.epoch_count = None, 0
            self.epoch_closed = False
            self.train_model.train()
            bar = tqdm(self.loader, total=min(self.iters_per_epoch, self.total_iters - epoch * self.iters_per_epoch),
                       initial=skip if epoch == start_epoch else 0,
                       desc=f"Epoch {epoch + 1}/{self.epochs}", disable=not self.dist.is_main, file=sys.stderr,
                       dynamic_ncols=True, leave=True)
            for batch in bar:
                self._train_iteration(batch, epoch, bar)
                mid_epoch = self.iteration % self.iters_per_epoch != 0 and self.iteration < self.total_iters
                if mid_epoch and cfg.val and cfg.val_every_steps and self.iteration % cfg.val_every_steps == 0:
                    self._validate_and_save(epoch)
                elif mid_epoch and cfg.save_every_steps and self.iteration % cfg.save_every_steps == 0:
                    self._save_checkpoint(validated=False)
                for cb in self.callbacks.get("on_step_end", []):
                    cb(self)
                if self.iteration >= self.total_iters:
                    break
            bar.close()
            self._end_epoch(epoch)

    def _end_epoch(self, epoch: int) -> None:
        """Validate (when due) and checkpoint at the end of ``epoch``."""
        cfg = self.cfg
        self.epoch_closed = True
        last = self.iteration >= self.total_iters or epoch == self.epochs - 1
        if cfg.val and ((epoch + 1) % cfg.val_period == 0 or last):
            self._validate_and_save(epoch)
        elif (epoch + 1) % cfg.save_period == 0 or last:
            self._save_checkpoint(validated=False)
        for cb in self.callbacks.get("on_epoch_end", []):
            cb(self)

    def _train_iteration(self, batch: Any, epoch: int, bar: tqdm) -> None:
        ni = self.iteration
        rng_before = capture_rng_state()  # the state a divergence checkpoint resumes from
        apply_schedule(self.optimizer, self.schedule, ni)
        ctx = self._ctx(epoch)
        loss, items = self.task.training_step(self.train_model, batch, ctx)
        mean_loss = D.all_reduce_mean(loss.detach().float().reshape(1)).item()  # the same answer on every rank
        if not math.isfinite(mean_loss):
            self._stop_diverged(mean_loss, ni, epoch, rng_before)
        self.scaler.scale(loss).backward()
        stepped = ni - self.last_opt_step >= ctx.accumulate
        if stepped:
            self._optimizer_step()
            self.last_opt_step = ni
        self.iteration = ni + 1
        items = D.all_reduce_mean(items.detach().to(self.device, torch.float32)).cpu().double()
        self.epoch_sum = items if self.epoch_sum is None else self.epoch_sum + items
        self.epoch_count += 1
        mean = (self.epoch_sum / self.epoch_count).tolist()
        bar.set_postfix({n: f"{v:.4g}" for n, v in zip(self.task.loss_names, mean)}, refresh=False)
        extras = self.task.step_log_extras()
        if self.dist.is_main and (ni % self.cfg.log_every_steps == 0 or extras):
            record = {"iteration": ni, "epoch": epoch, "optimizer_step": stepped,
                      "lr": [g["lr"] for g in self.optimizer.param_groups]}
            record.update({n: float(v) for n, v in zip(self.task.loss_names, items.tolist())})
            record.update(extras)
            self.step_log.write(record)

    def _stop_diverged(self, loss: float, iteration: int, epoch: int, rng: dict[str, Any]) -> None:
        """Save the state before ``iteration`` (weights still finite) and stop with one clear line.

        Why: a NaN loss makes every later step NaN; training on would overwrite the last good checkpoint
        with NaN weights and still exit 0. The state written here resumes and loads like any other.
        """
        finite = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        weights = self.run_dir / "weights"
        if finite:
            self._save_checkpoint(validated=False, rng=rng)
            where = f"the last finite state (before iteration {iteration}) is saved in {weights}"
        else:
            where = f"the weights were already non-finite, so the previous checkpoint in {weights} was kept"
        raise TrainingDivergedError(
            f"Training diverged: the loss is {loss} at iteration {iteration} (epoch {epoch + 1}); {where}. "
            f"Lower lr0 (now {self.cfg.lr0:g}), enable grad_clip, or check the data, then start a new run.")

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        for cb in self.callbacks.get("on_before_optimizer_step", []):
            cb(self)
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

    # -- validation and checkpoints -------------------------------------------------------------------
    def _validate_and_save(self, epoch: int) -> None:
        eval_model = self.ema.ema if self.ema is not None else self.model
        self.metrics = self.task.validate(eval_model, self._ctx(epoch))
        self.model.train()
        fitness = self.task.fitness(self.metrics)
        improved = self.best_fitness is None or fitness > self.best_fitness
        if improved:
            self.best_fitness = fitness
        if self.dist.is_main:
            row: dict[str, Any] = {"epoch": epoch + 1, "iteration": self.iteration}
            mean = (self.epoch_sum / max(self.epoch_count, 1)).tolist() if self.epoch_sum is not None else []
            row.update({f"train/{n}": v for n, v in zip(self.task.loss_names, mean)})
            row.update(self.metrics)
            row.update({f"lr/pg{j}": g["lr"] for j, g in enumerate(self.optimizer.param_groups)})
            self.results.append(row)
            if self.cfg.plots and time.monotonic() - self.last_plot > PLOT_EVERY_S:  # savefig costs seconds
                self.results.plot(self.run_dir / "results.png", title=f"{self.cfg.model} - {self.run_dir.name}")
                self.last_plot = time.monotonic()
            logger.info("epoch %d iteration %d: %s", epoch + 1, self.iteration,
                        ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items()))
        self._save_checkpoint(validated=True, improved=improved)
        for cb in self.callbacks.get("on_validation_end", []):
            cb(self)

    def _save_checkpoint(self, *, validated: bool, improved: bool = False, rng: dict[str, Any] | None = None) -> None:
        """Write deployable weights (last, and best when improved) and the resumable state (rank 0)."""
        rng = D.all_gather_objects(capture_rng_state() if rng is None else rng)
        if not self.dist.is_main:
            return
        weights = self.run_dir / "weights"
        deploy = self.ema.ema if self.ema is not None else self.model
        self.task.save_weights(deploy, weights / "last.safetensors", metrics=self.metrics)
        if validated and improved:
            self.task.save_weights(deploy, weights / "best.safetensors", metrics=self.metrics)
        grads = {n: p.grad.detach().cpu().clone() for n, p in self.model.named_parameters() if p.grad is not None}
        engine = {"grads": grads, "epoch_sum": self.epoch_sum, "epoch_count": self.epoch_count,
                  "epoch_closed": self.epoch_closed}
        state = TrainState(
            model_name=self.cfg.model, task=self.task.name, config=self.cfg.to_dict(), iteration=self.iteration,
            last_opt_step=self.last_opt_step, model={k: v.detach().cpu().clone() for k, v in
                                                     self.model.state_dict().items()},
            optimizer=self.optimizer.state_dict(), ema=self.ema.state_dict() if self.ema is not None else None,
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None, rng=rng,
            best_fitness=self.best_fitness, metrics=dict(self.metrics),
            task_state={**self.task.state_dict(), "_engine": engine}, version=__version__)
        save_state(state, weights, epoch=self.iteration // self.iters_per_epoch)

"""effzoo's one training engine, shared by every task (orchestration layer, see ARCHITECTURE.md).

* :mod:`zoo.engine.trainer` - the loop (``Trainer``): schedule, precision, accumulation, clipping, EMA,
  validation, logs, checkpoints and exact resume, DDP under torchrun.
* :mod:`zoo.engine.api` - ``zoo.train``, what ``zoo train`` calls: the model card's task gives the
  ``TaskSpec`` whose ``train_task`` the trainer runs.
* helpers: :mod:`~zoo.engine.optim` (param groups, stateless schedule), :mod:`~zoo.engine.ema`,
  :mod:`~zoo.engine.sampler`, :mod:`~zoo.engine.checkpointing`, :mod:`~zoo.engine.results`.

What a task implements (``Task``, ``StepContext``, recipes) lives below, in :mod:`zoo.tasks.base`, so that a
task slice never imports the engine that runs it. Nothing heavy is imported here.
"""

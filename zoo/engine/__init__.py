"""effzoo's one training engine, shared by every model family.

* :mod:`zoo.engine.trainer` - the loop (``Trainer``): schedule, precision, accumulation, clipping, EMA,
  validation, logs, checkpoints and exact resume, DDP under torchrun.
* :mod:`zoo.tasks.base.training` - the contract a family implements (``Task``) and the ``TASKS`` table that maps
  a model card's ``task`` to it: ``detection`` (:mod:`zoo.tasks.detection`), ``language-modeling``
  (:mod:`zoo.tasks.language`).
* :mod:`zoo.engine.api` - ``zoo.train``, what ``zoo train`` calls.
* helpers: :mod:`~zoo.tasks.base.recipe` (flat recipe dataclasses), :mod:`~zoo.engine.optim` (param groups,
  stateless schedule), :mod:`~zoo.engine.ema`, :mod:`~zoo.engine.sampler`, :mod:`~zoo.core.rng`,
  :mod:`~zoo.engine.checkpointing`, :mod:`~zoo.engine.results`, :mod:`~zoo.core.distributed`.

Nothing heavy is imported here; import the submodule you need.
"""

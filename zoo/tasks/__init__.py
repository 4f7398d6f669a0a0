"""Task slices: everything one task needs, in one folder (``detection/``, ``language/``).

Importing ``zoo.tasks`` registers every slice's :class:`~zoo.tasks.base.spec.TaskSpec`; the orchestration
layer (engine, exporter, benchmark, CLI) looks tasks up with :func:`get_task` and never compares task
names. What every slice implements is in ``zoo/tasks/base/``.
"""
from __future__ import annotations

from zoo.tasks import detection, language  # noqa: F401  (register their TaskSpecs)
from zoo.tasks.base.spec import TaskSpec, get_task, list_tasks, register_task

# The built-in tasks' names, for code that lays out one section per task (the benchmark's tables).
DETECTION: str = detection.SPEC.name
LANGUAGE_MODELING: str = language.SPEC.name

__all__ = ["DETECTION", "LANGUAGE_MODELING", "TaskSpec", "get_task", "list_tasks", "register_task"]

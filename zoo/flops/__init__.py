"""The one FLOP / MAC / nonlinearity counter of the zoo (see :mod:`zoo.flops.counter` for the rules)."""
from __future__ import annotations

from zoo.flops.counter import CONVENTIONS, FlopResult, ModuleCost, NonlinearResult, count_flops, count_nonlinear

__all__ = ["CONVENTIONS", "FlopResult", "ModuleCost", "NonlinearResult", "count_flops", "count_nonlinear"]

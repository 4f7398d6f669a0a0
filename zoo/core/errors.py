"""Errors that effzoo raises on bad input, and the close-match helper behind their suggestions.

Why a tiny module of its own: every layer (registry, checkpoints, datasets, CLI) needs the same
"what was wrong, and what to do" shape, and the CLI turns exactly these into one line with exit code 2.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class for user-facing errors; the CLI prints ``str(err)`` as one line and exits with 2."""


class UnknownModelError(ZooError, KeyError):
    """A model name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message; we want it verbatim.
        return str(self.args[0]) if self.args else ""


class CheckpointError(ZooError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class UnsafePickleError(CheckpointError):
    """A pickle that references a global outside the allow-list; it is refused before anything runs."""


class DataError(ZooError, ValueError):
    """A dataset, annotation or corpus file that is malformed; the message names file and field."""


class TrainingDivergedError(ZooError):
    """The training loss became non-finite; the run stopped after saving its last finite state."""


class ExportError(ZooError, ValueError):
    """An export that cannot be done as asked (bad target, option or model)."""


class ParityError(ExportError):
    """The exported file does not compute what the PyTorch model computes; nothing was written."""


class OnnxModelError(ZooError, ValueError):
    """A deployed model file that cannot be run: unreadable, corrupt, an unsupported opset, or not this model."""


class MissingExtraError(ZooError, ModuleNotFoundError):
    """An optional dependency a feature needs is not installed; the message names the extra to install."""


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates closest to ``word`` (difflib ratio, then shared prefix)."""
    candidates = list(candidates)
    by_lower = {c.lower(): c for c in candidates}  # 'LeYOLO-Nano' is 'leyolo-nano' typed with capitals
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return [by_lower[word.lower()]]
    matches = [by_lower[m] for m in difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.5)]
    if not matches:
        prefix = word.split("-")[0]
        matches = [c for c in candidates if c.startswith(prefix)][:n]
    return matches


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Format the ``Did you mean ...?`` tail of an error message ('' when nothing is close)."""
    matches = close_matches(word, candidates)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"

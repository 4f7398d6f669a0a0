"""Run logs: per-iteration ``steps.jsonl``, per-validation ``results.csv`` and the ``results.png`` curves.

Both logs carry the iteration of each row, so a resumed run first cuts them back to the checkpoint's
iteration: rows written after the last checkpoint (by a run that was then killed) are replaced by the
resumed run's rows instead of appearing twice. Only rank 0 creates these objects.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.core.fileio import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON ``null``), through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


class StepLog:
    """Append-only JSON-lines log, one object per logged iteration (floats written exactly: repr)."""

    def __init__(self, path: str | os.PathLike[str], resume_iteration: int | None = None) -> None:
        self.path = Path(path)
        if resume_iteration is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("iteration", 0) < resume_iteration]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))
        elif resume_iteration is None and self.path.exists():
            self.path.unlink()  # a fresh run in a folder the caller allowed us to use

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:  # strict JSON: NaN/Infinity are not JSON
            fh.write(json.dumps(finite_or_none(dict(record)), allow_nan=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class ResultsTable:
    """``results.csv``: one row per validation; rewritten atomically on every row (it is small)."""

    def __init__(self, path: str | os.PathLike[str], resume_iteration: int | None = None) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if resume_iteration is not None and self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as fh:
                self.rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)
                             if int(float(row.get("iteration", 0))) <= resume_iteration]

    def append(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(r.get(k, "")) for k in columns})
        write_text_atomic(self.path, buf.getvalue())

    def plot(self, png_path: str | os.PathLike[str], x: str = "epoch", title: str = "") -> Path | None:
        """Curves of every numeric column against ``x`` (one panel each) -> ``png_path``."""
        skip = {x, "epoch", "iteration"}
        columns = [k for k in (self.rows[0] if self.rows else {}) if k not in skip]
        return plot_columns(self.rows, x, columns, png_path, title=title)


def plot_columns(rows: Sequence[Mapping[str, Any]], x: str, columns: Sequence[str],
                 png_path: str | os.PathLike[str], *, title: str = "", ncols: int = 4) -> Path | None:
    """One small panel per column against ``x`` (matplotlib Agg), written atomically; None if no rows."""
    columns = [c for c in columns if any(isinstance(r.get(c), (int, float)) for r in rows)]
    if not rows or not columns:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(ncols, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax, col in zip(axes.flat, columns):
        pts = [(r[x], r[col]) for r in rows if isinstance(r.get(col), (int, float)) and r.get(x) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", linewidth=1.5)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(png_path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _fmt(v: Any) -> Any:
    return repr(v) if isinstance(v, float) else v


def _number(text: str) -> Any:
    try:
        f = float(text)
    except (TypeError, ValueError):
        return text
    return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f

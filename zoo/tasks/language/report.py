"""Training curves of an LM run, rebuilt from ``steps.jsonl`` at every validation (rank 0 only).

``steps.jsonl`` is the engine's per-iteration log; on metrics iterations the LM task adds per-layer
lists (``entropy``, ``nan``, ``temperature``, ``threshold``). From them this module writes

* ``entropy_metrics.csv``: one row per metrics iteration, one column per (quantity, layer);
* ``entropy_curves.png``: layerwise mean entropy vs step (2501.03489 Figure 5);
* ``nan_counts.png``: NaN entries of each layer's attention vs step (the reference's instability log).

Reading the log (which the engine cuts back on resume) keeps the curves right after a resumed run
without the task holding any history of its own.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from zoo.core.fileio import write_text_atomic

PER_LAYER = ("entropy", "nan", "temperature", "threshold")


def metric_rows(steps_file: Path) -> list[dict[str, Any]]:
    """The steps.jsonl records that carry per-layer metrics, in iteration order."""
    if not steps_file.is_file():
        return []
    rows = []
    for line in steps_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if "entropy" in rec:
                rows.append(rec)
    return sorted(rows, key=lambda r: r["iteration"])


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"iteration": rec["iteration"]}
    for key in ("ce", "ereg", "ln_T"):
        if key in rec:
            row[key] = rec[key]
    for key in PER_LAYER:
        for layer, value in enumerate(rec.get(key) or []):
            row[f"{key}/L{layer}"] = value
    return row


def write_training_curves(run_dir: str | Path, *, title: str = "") -> list[Path]:
    """Write the CSV and PNGs above from ``run_dir/steps.jsonl``; returns the files written (none without data)."""
    from zoo.models.pi_transformer.plots import (  # deferred: matplotlib is slow to import
        plot_layer_entropy_curves,
        plot_nan_counts,
    )

    run_dir = Path(run_dir)
    rows = metric_rows(run_dir / "steps.jsonl")
    if not rows:
        return []
    flat = [_flat(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in flat:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
    written = [write_text_atomic(run_dir / "entropy_metrics.csv", buf.getvalue())]
    steps = [r["iteration"] for r in rows]
    ln_t = rows[-1].get("ln_T")
    seq_len = round(math.exp(ln_t)) if ln_t else None
    prefix = f"{title}: " if title else ""
    written.append(plot_layer_entropy_curves(steps, [r["entropy"] for r in rows], run_dir / "entropy_curves.png",
                                             seq_len=seq_len, title=f"{prefix}layerwise mean entropy"))
    written.append(plot_nan_counts(steps, [r["nan"] for r in rows], run_dir / "nan_counts.png",
                                   title=f"{prefix}NaN count in attention"))
    return written

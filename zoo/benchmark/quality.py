"""Measured quality of one model: evaluate weights when they exist, else train on a short fixed budget.

Detectors: COCO-style mAP50-95 (``zoo.tasks.detection.val``, the COCO evaluator) on ``settings.data``, with weights
from ``--weights-dir`` or the local weights folder when their classes match the data; otherwise, on the
synthetic set, the models in ``det_train_models`` are trained from scratch for ``det_max_steps`` iterations
(``zoo.train``) and their last weights evaluated on the set's val split. Transformers: perplexity on the
held-out split of ``lm_corpus`` (``zoo.tasks.language.evaluate.evaluate_lm``) of found weights, or of a
``zoo.train`` run of the CPU recipe (spec §9.2) for ``lm_max_steps`` iterations when the model's size is in ``lm_train_sizes``.

Trained runs are cached in ``<out>/cache/<model>-<hash of the training settings>/``; a re-run with the same
settings reuses them (the evaluation is re-run: it is cheap and keeps the number measured), ``fresh``
deletes that folder first. A run folder without its completion marker (a killed run) is retrained.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from zoo.benchmark.measure import measured, stopwatch
from zoo.benchmark.settings import BenchSettings, settings_hash
from zoo.core.errors import DataError, ZooError
from zoo.core.factory import pretrained_path
from zoo.core.fileio import write_json_atomic
from zoo.core.registry import ModelCard
from zoo.core.version import __version__
from zoo.engine.api import train
from zoo.eval.datasets.synthetic import CLASSES, SyntheticConfig, synthetic_root
from zoo.tasks.detection.val import build_for_data, val_full
from zoo.tasks.language.evaluate import evaluate_lm

logger = logging.getLogger(__name__)

MARKER = "bench_train.json"


def find_weights(card: ModelCard, weights_dir: str | None) -> Path | None:
    """Weights for ``card``: ``weights_dir`` first (released file name or ``<name>.safetensors``), then the
    local weights folder (``zoo.core.factory.pretrained_path``); None when there are none (never downloads)."""
    if weights_dir:
        folder = Path(weights_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"--weights-dir {folder} is not a folder.")
        names = [f"{card.name}.safetensors"]
        if card.weights_file:
            names += [card.weights_file, f"{Path(card.weights_file).stem}.safetensors"]
        for name in names:
            if (folder / name).is_file():
                return folder / name
    try:
        return pretrained_path(card.name)
    except ZooError:
        return None


def synthetic_data(settings: BenchSettings) -> str:
    """The synthetic set as a ``data`` spec (generated on first use): ``synthetic`` for the default set, else
    the folder of ``settings.det_synthetic``."""

    folder = synthetic_root(settings.det_synthetic or SyntheticConfig())
    return "synthetic" if settings.det_synthetic is None else str(folder)


def uses_synthetic(settings: BenchSettings) -> bool:
    return settings.data == "synthetic"


# -- training with a cache ----------------------------------------------------------------------------
def train_cached(train_keys: dict[str, Any], cache_root: Path, *, fresh: bool) -> dict[str, Any]:
    """Train ``train_keys["model"]`` with ``zoo.train`` into a settings-keyed folder, or reuse the finished run.

    Returns:
        ``{"weights", "run_dir", "key", "steps", "train_seconds", "cached", "settings", "finished"}``.
    """
    keys = dict(train_keys)
    model = keys.pop("model")
    recipe = Path(keys["config"]).read_bytes() if keys.get("config") else b""
    key = settings_hash({"model": model, **{k: v for k, v in keys.items() if k != "config"},
                         "recipe_sha256": hashlib.sha256(recipe).hexdigest(), "effzoo": __version__})
    run_dir = cache_root / f"{model}-{key}"
    marker = run_dir / MARKER
    if fresh and run_dir.exists():
        logger.info("--fresh: removing the cached run %s", run_dir)
        shutil.rmtree(run_dir)
    if marker.is_file():
        info = json.loads(marker.read_text())
        if Path(info["weights"]).is_file():
            return {**info, "cached": True}
    if run_dir.exists():  # a run that never finished (killed): start over, it is our own cache folder
        logger.info("removing the unfinished cached run %s", run_dir)
        shutil.rmtree(run_dir)
    with stopwatch() as elapsed:
        result = train(model, out=str(run_dir), **keys)
    info = {"weights": str(result.last), "run_dir": str(run_dir), "key": key, "steps": result.iterations,
            "train_seconds": round(elapsed(), 3), "settings": {"model": model, **keys},
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(marker, info)
    return {**info, "cached": False}


# -- detectors --------------------------------------------------------------------------------------
def detector_quality(card: ModelCard, settings: BenchSettings, cache_root: Path, *, fresh: bool) -> dict[str, Any]:
    """``{"measured": record | None, "notes": [...], "training": info | None}`` for a detector."""
    notes: list[str] = []
    weights = find_weights(card, settings.weights_dir)
    data = synthetic_data(settings) if uses_synthetic(settings) else settings.data
    dataset_label = _dataset_label(settings)
    if weights is not None:
        imgsz = settings.det_imgsz if uses_synthetic(settings) else eval_size(card)
        try:
            return {"measured": _map(card, weights, data, dataset_label, imgsz, trained=None), "notes": notes,
                    "training": None}
        except DataError as err:  # e.g. released COCO weights (80 classes) against the 5-class synthetic set
            notes.append(f"weights {weights} not evaluated on {dataset_label}: {err}")
    if uses_synthetic(settings) and card.name in settings.det_train_models:
        info = train_cached(settings.det_training(card.name, data), cache_root, fresh=fresh)
        rec = _map(card, Path(info["weights"]), data, dataset_label, settings.det_imgsz, trained=info)
        noise = settings.det_seed_noise()
        if noise is not None:  # one seed is measured; the recipe's seed-to-seed std goes next to it
            rec["seed_std"] = round(100 * noise, 3)
        return {"measured": rec, "notes": notes, "training": info}
    if weights is None:
        notes.append("no weights found (looked in --weights-dir and the local weights folder); "
                     + ("not trained: only " + ", ".join(settings.det_train_models) + " is trained in the bench "
                        "budget" if uses_synthetic(settings) else "pass --weights-dir with the released files"))
    return {"measured": None, "notes": notes, "training": None}


def eval_size(card: ModelCard) -> int:
    """Image size for found weights on real data: the largest size the paper reports an mAP at (so the
    measured and reported numbers compare like for like), else the card's default size."""
    sizes = [int(k.split("@")[1]) for k in card.paper if k.startswith("map50-95@")]
    return max(sizes) if sizes else card.input_size


def _dataset_label(settings: BenchSettings) -> str:
    if not uses_synthetic(settings):
        return str(settings.data)
    cfg = settings.det_synthetic
    if cfg is None:
        cfg = SyntheticConfig()
    return f"synthetic shapes val ({cfg.num_val} images, {cfg.image_size}px, {len(_classes())} classes)"


def _classes() -> tuple[str, ...]:
    return CLASSES


def _map(card: ModelCard, weights: Path, data: str, dataset_label: str, imgsz: int,
         trained: dict[str, Any] | None) -> dict[str, Any]:
    with stopwatch() as elapsed:
        model = build_for_data(card.name, weights, data)
        result = val_full(model, data, imgsz=imgsz, batch=8)
    ap = result.stats["AP"]
    if not math.isfinite(ap):
        raise DataError(f"mAP of {card.name} on {dataset_label} is not a number ({ap}).")
    how = f"zoo.tasks.detection.val.val_full (COCO evaluator, backend {result.backend}) at imgsz {imgsz}"
    return measured(round(100 * ap, 3), "mAP50-95 (%)", how, elapsed(), metric="mAP50-95", dataset=dataset_label,
                    imgsz=imgsz,
                    ap50=round(100 * result.stats["AP50"], 3), images=result.num_images, weights=str(weights),
                    source="trained by the benchmark" if trained else "weights found")


# -- transformers -----------------------------------------------------------------------------------
def lm_quality(card: ModelCard, settings: BenchSettings, cache_root: Path, *, fresh: bool) -> dict[str, Any]:
    """``{"measured": record | None, "notes": [...], "training": info | None}`` for a transformer."""
    notes: list[str] = []
    size = card.extra.get("size", "")
    weights = find_weights(card, settings.weights_dir)
    info = None
    if weights is None:
        if size not in settings.lm_train_sizes:
            notes.append(f"not trained in the bench budget (only size(s) {', '.join(settings.lm_train_sizes)} are); "
                         "the reported perplexity is the paper's")
            return {"measured": None, "notes": notes, "training": None}
        info = train_cached(settings.lm_training(card.name), cache_root, fresh=fresh)
        weights = Path(info["weights"])
    return {**_perplexity(card, weights, settings, info), "training": info}


def _perplexity(card: ModelCard, weights: Path, settings: BenchSettings,
                trained: dict[str, Any] | None) -> dict[str, Any]:
    with stopwatch() as elapsed:
        res = evaluate_lm(card.name, weights, data=settings.lm_corpus, max_chunks=settings.lm_val_chunks,
                          batch_size=32, device="cpu")
    how = (f"zoo.tasks.language.evaluate.evaluate_lm: exp(mean next-token CE) on {res['chunks']} held-out chunks of T={res['seq_len']} "
           f"({'fixed-seed sample' if settings.lm_val_chunks else 'whole split'})")
    ppl = res.get("perplexity")
    if ppl is None or not math.isfinite(ppl):
        return {"measured": None, "notes": [f"diverged: held-out perplexity is not finite ({how})"]}
    steps = f", trained {trained['steps']} steps" if trained else ""
    return {"measured": measured(round(ppl, 4), "perplexity", how, elapsed(), metric="perplexity",
                                 dataset=f"{res['corpus']} held-out split{steps}", ce=res["ce"], tokens=res["tokens"],
                                 chunks=res["chunks"], seq_len=res["seq_len"], weights=str(weights),
                                 source="trained by the benchmark" if trained else "weights found"),
            "notes": []}

"""The PI-transformer study: train every variant the same way, then put perplexity next to PI cost.

``run_pi_study(config="configs/pi_cpu_tiny.yaml", size="tiny")`` trains each ``pi-gpt2-<size>-<variant>``
with the same recipe, seed and step budget (``zoo.train``), measures the perplexity of the *last* weights on
the whole held-out split (``zoo.eval.lm``), analyses the attention entropy (headwise distribution, overload,
collapse), and writes the Table-3-style comparison of spec pi_transformer.md §12 -- PPL, nonlinear
operations, FFN / attention FLOPs, communication, latency, savings -- as ``study.md`` and ``study.json``,
plus ``headwise_distribution.png`` (2501.03489 Figure 2a) and one entropy heatmap per variant.

Each variant's run folder is kept (``OUT/<variant>/``): re-running the study reuses finished variants and
resumes interrupted ones, so a long study survives being stopped. ``measured_perplexity`` is the one-call
version for other tools (the benchmark): train one variant on a short budget, return its perplexity,
cached by settings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.core.distributed import resolve_device
from zoo.core.errors import did_you_mean
from zoo.core.factory import create_model
from zoo.core.fileio import write_json_atomic
from zoo.core.registry import get_card
from zoo.engine.api import train
from zoo.engine.checkpointing import state_path
from zoo.eval.lm import evaluate_perplexity
from zoo.eval.lm_data import default_cache_dir, prepare_lm_data
from zoo.models.pi_transformer.census import nonlinearity_census, param_count
from zoo.models.pi_transformer.cost import pi_cost
from zoo.models.pi_transformer.entropy import attention_entropy
from zoo.models.pi_transformer.variants import SIZES, VARIANTS
from zoo.studies.pi_study_table import write_study
from zoo.tasks.base.recipe import load_config
from zoo.tasks.language.report import metric_rows
from zoo.tasks.language.train_config import LMTrainConfig

logger = logging.getLogger(__name__)

RESULT_FILE = "study_result.json"  # per-variant result inside its run folder


@dataclass
class VariantResult:
    """One row of the study (see ``zoo.studies.pi_study_table`` for how it is printed)."""

    name: str
    variant: str
    paper_name: str
    perplexity: float | None
    ce: float | None
    tokens: int
    chunks: int
    seq_len: int
    diverged: bool
    nan_steps: int
    n_params: int
    census: str
    nonlinear_elements: int
    ffn_flops: int
    attn_flops: int
    flops_string: str
    comm_gb: float
    latency_min: float
    savings_comm: float
    savings_latency: float
    cost_provenance: str
    headwise_bins: list[float | None]
    overload: float | None
    collapse: float | None
    train_seconds: float
    steps: int
    weights: str
    settings: str = ""


@dataclass
class StudyResult:
    """Rows of a study plus where the files went."""

    rows: list[VariantResult]
    out: Path
    settings: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _resolved_config(config: str | os.PathLike[str] | None, model: str, overrides: dict[str, Any]):
    return load_config(LMTrainConfig, config, {**overrides, "model": model})


def _train(name: str, config: str | os.PathLike[str] | None, run_dir: Path, overrides: dict[str, Any]) -> float:
    """Train (or resume) ``name`` into ``run_dir``; returns the wall time spent now."""
    start = time.perf_counter()
    if state_path(run_dir).is_file():
        logger.info("%s: resuming the run in %s", name, run_dir)
        train(name, resume=run_dir)
    else:
        train(name, config=config, out=str(run_dir), **overrides)
    return time.perf_counter() - start


def _nan_steps(run_dir: Path) -> int:
    return sum(1 for r in metric_rows(run_dir / "steps.jsonl")
               if any((v is not None and (math.isnan(v) or v > 0)) for v in r.get("nan", [])))


def evaluate_variant(name: str, run_dir: Path, cfg: Any, *, entropy_chunks: int = 64, eval_chunks: int = 0,
                     dataset: str = "codeparrot", progress: bool = False) -> VariantResult:
    """Perplexity, entropy analysis, census and PI cost of the last weights of a finished run."""
    import torch

    from zoo.models.pi_transformer.plots import plot_head_entropy  # deferred: matplotlib is slow to import

    weights = run_dir / "weights" / "last.safetensors"
    device = resolve_device(cfg.device)
    model = create_model(name, checkpoint_path=weights).to(device)
    tok = str(run_dir / "tokenizer.json") if (run_dir / "tokenizer.json").is_file() else cfg.tokenizer
    data = prepare_lm_data(cfg.data, tokenizer=tok, vocab_size=0 if tok != "bpe" else cfg.vocab_size,
                           val_data=cfg.val_data, val_fraction=cfg.val_fraction, max_train_docs=cfg.max_train_docs,
                           max_val_docs=cfg.max_val_docs, text_column=cfg.text_column, cache_dir=cfg.cache or None,
                           progress=progress)
    T = model.config.context_length
    val = data.chunks("val", T)
    evaluated = val.subset(eval_chunks, seed=0) if eval_chunks else val
    ppl = evaluate_perplexity(model, evaluated, batch_size=max(cfg.batch, 32), device=device, progress=progress)
    sub = val.subset(entropy_chunks, seed=0)
    sample = torch.stack([sub[i] for i in range(len(sub))])  # (N, T)
    report = attention_entropy(model, sample, batch_size=min(cfg.batch, 16))
    plot_head_entropy(report, run_dir / "head_entropy.png", title=f"{name}: head entropy (T={T})")
    census = nonlinearity_census(model.config, T)
    cost = pi_cost(model.config, T, dataset)
    card = get_card(name)
    finite = ppl.perplexity is not None and math.isfinite(ppl.perplexity)
    nan_steps = _nan_steps(run_dir)
    state = json.loads((run_dir / "weights" / "last.json").read_text())
    return VariantResult(
        name=name, variant=card.extra.get("variant", name), paper_name=card.extra.get("paper_name", name),
        perplexity=ppl.perplexity if finite else None, ce=ppl.ce if math.isfinite(ppl.ce) else None,
        tokens=ppl.tokens, chunks=ppl.chunks, seq_len=T, diverged=not finite or nan_steps > 0, nan_steps=nan_steps,
        n_params=param_count(model.config).model, census=census.paper_string,
        nonlinear_elements=census.nonlinear_elements, ffn_flops=census.ffn_flops, attn_flops=census.attn_flops,
        flops_string=census.flops_string, comm_gb=cost.comm_gb, latency_min=cost.latency_min,
        savings_comm=cost.savings.comm, savings_latency=cost.savings.latency, cost_provenance=cost.provenance,
        headwise_bins=[None if math.isnan(b) else b for b in report.bins],
        overload=None if math.isnan(report.overload) else report.overload,
        collapse=None if math.isnan(report.collapse) else report.collapse,
        train_seconds=0.0, steps=int(state.get("iteration", 0)), weights=str(weights))


def run_pi_study(config: str | os.PathLike[str] | None = None, *, size: str = "tiny",
                 variants: list[str] | None = None, out: str | os.PathLike[str] = "runs/study-pi",
                 dataset: str = "codeparrot", entropy_chunks: int = 64, eval_chunks: int = 0, progress: bool = True,
                 **overrides: Any) -> StudyResult:
    """Train and evaluate PI-GPT variants with one recipe; write the Table-3-style study.

    Args:
        config: LM recipe (``configs/pi_cpu_tiny.yaml``); None = the CPU recipe defaults.
        size: model size of every variant (``tiny``, ``small``, ``small-l18``).
        variants: variant suffixes (``sm-ln-g``, ``ereg-sm-t-scfuffn``, ...); default all twelve.
        out: study folder (one run folder per variant inside).
        dataset: calibration of the PI-cost model (``codeparrot`` or ``languini``).
        entropy_chunks: held-out chunks averaged by the entropy analysis.
        eval_chunks: perplexity on a fixed-seed sample of this many held-out chunks (0 = the whole split).
        **overrides: recipe keys applied to every variant (``max_steps=100``, ``seed=1``, ...).

    Returns:
        ``StudyResult``; ``study.md``, ``study.json`` and ``headwise_distribution.png`` are in ``out``.
    """

    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {', '.join(SIZES)}.")
    chosen = list(variants) if variants else list(VARIANTS)
    for v in chosen:
        if v not in VARIANTS:
            raise ValueError(f"Unknown variant {v!r}.{did_you_mean(v, VARIANTS)} Variants: {', '.join(VARIANTS)}.")
    out = Path(out)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    rows = []
    for v in chosen:
        name = f"pi-gpt2-{size}-{v}"
        cfg = _resolved_config(config, name, overrides)
        settings = {k: val for k, val in cfg.to_dict().items() if k not in ("model", "out", "device", "workers")}
        key = _settings_key({**settings, **({"eval_chunks": eval_chunks} if eval_chunks else {})})
        run_dir = out / v
        cached = run_dir / RESULT_FILE
        if cached.is_file():
            previous = json.loads(cached.read_text())
            if previous.get("settings") == key:
                logger.info("%s: reusing the finished run in %s", name, run_dir)
                rows.append(VariantResult(**previous))
                continue
            raise ValueError(f"{run_dir} holds a run with other settings; choose another --out or delete it.")
        seconds = _train(name, config, run_dir, overrides)
        row = evaluate_variant(name, run_dir, cfg, entropy_chunks=entropy_chunks, eval_chunks=eval_chunks,
                               dataset=dataset, progress=progress)
        row.train_seconds, row.settings = round(seconds, 1), key
        write_json_atomic(cached, asdict(row))
        rows.append(row)
        logger.info("%s: perplexity %s after %d steps (%.0f s)", name, row.perplexity, row.steps, seconds)
    shared = {k: val for k, val in _resolved_config(config, f"pi-gpt2-{size}-{chosen[0]}", overrides).to_dict().items()
              if k not in ("model", "out")}
    result = StudyResult(rows=rows, out=out, settings={"size": size, "config": str(config or "defaults"), **shared})
    result.files = write_study(result, dataset=dataset)
    return result


def measured_perplexity(name: str, *, max_steps: int = 300, batch: int = 32, context_length: int = 64,
                        seed: int = 0, data: str = "stdlib", device: str = "cpu", eval_chunks: int = 0,
                        cache_dir: str | os.PathLike[str] | None = None, **overrides: Any) -> float:
    """Train ``name`` from scratch on a short budget (the CPU recipe) and return its held-out perplexity.

    For tools that need a *measured* quality number next to a cost (the benchmark). Results are cached
    in ``CACHE/measured_ppl.json`` keyed by every setting (and the corpus fingerprint through the token
    cache), so repeated calls are free. A diverged model returns ``nan``.

    Args:
        name: registry name (``pi-gpt2-tiny-sm-ln-g``).
        max_steps, batch, context_length, seed, data, device: recipe settings (defaults: spec §9.2).
        eval_chunks: perplexity on a fixed-seed sample of this many held-out chunks (0 = the whole split).
        cache_dir: where runs, token files and the result cache live (default ``$EFFZOO_CACHE/lm``).
        **overrides: any other ``LMTrainConfig`` key.
    """
    import tempfile


    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    settings = dict(model=name, max_steps=max_steps, batch=batch, context_length=context_length, seed=seed,
                    data=data, **overrides)
    cfg = _resolved_config(None, name, {k: v for k, v in settings.items() if k != "model"})
    key = _settings_key({**{k: v for k, v in cfg.to_dict().items() if k not in ("out", "device", "workers", "cache")},
                         **({"eval_chunks": eval_chunks} if eval_chunks else {})})
    table_path = cache / "measured_ppl.json"
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    if key in table:
        return float("nan") if table[key]["perplexity"] is None else float(table[key]["perplexity"])
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache / "runs") as tmp:
        run_dir = Path(tmp) / "run"
        run_overrides = {**settings, "cache": str(cache), "device": device, "val_every_steps": 0,
                         "save_every_steps": 0}
        run_overrides.pop("model")
        _train(name, None, run_dir, run_overrides)
        row = evaluate_variant(name, run_dir, _resolved_config(None, name, {**run_overrides, "out": str(run_dir)}),
                               eval_chunks=eval_chunks, progress=False)
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    table[key] = {"settings": settings, "perplexity": row.perplexity, "tokens": row.tokens}
    write_json_atomic(table_path, table)
    return float("nan") if row.perplexity is None else float(row.perplexity)

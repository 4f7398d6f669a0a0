"""``zoo.bench``: cost next to quality for every selected registry model, in one call.

Stages, each with a progress bar on stderr and its wall time recorded ("where the time went"):

1. data: generate the synthetic shapes set and tokenize the LM corpus when a later stage needs them (both
   cached across runs, so only a fresh machine pays for them);
2. cost: parameters, paper-convention GFLOPs and nonlinearity census at every registered input size, and
   the PI cost of transformers (``zoo.benchmark.cost``);
3. quality: measured mAP / perplexity from found weights or from a short cached training run, next to the
   papers' numbers (``zoo.benchmark.quality``);
4. latency: batch-1 CPU latency, eager and onnxruntime (``zoo.benchmark.latency``);
5. deployment: every detector in eager PyTorch, onnxruntime fp32/int8 and OpenVINO fp32/int8, timed in one
   interleaved loop, with int8 speed-ups and accuracy; YOLO11n / YOLOv8n as reference points when
   ultralytics is installed (``zoo.benchmark.deployment``);
6. report: ``bench.json``, ``bench.md``, ``pareto_detectors.png``, ``pareto_pi.png``, ``pareto_latency.png``,
   written atomically.

Default budgets (``BenchSettings``) are sized for 2 CPU cores: on the development machine (2-core AMD EPYC,
shared with other jobs) the full default run takes the time recorded in the README's Benchmark section.
A failure inside one model's stage is recorded in that model's ``errors`` and the run goes on; the CLI
exits non-zero when any were recorded.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zoo.benchmark.cost import model_cost, size_cost
from zoo.benchmark.deployment import REFERENCES, model_deployment, reference_latency
from zoo.benchmark.latency import model_latency
from zoo.benchmark.measure import StageTimer, cpu_seconds
from zoo.benchmark.quality import detector_quality, find_weights, lm_quality, synthetic_data, uses_synthetic
from zoo.benchmark.report import build_report, run_provenance, write_outputs
from zoo.benchmark.settings import BenchSettings
from zoo.benchmark.worker import run_isolated
from zoo.core.registry import ModelCard, get_card, list_models
from zoo.eval.lm_data import prepare_lm_data
from zoo.models.pi_transformer.variants import SIZES, VARIANTS
from zoo.tasks import DETECTION, LANGUAGE_MODELING, get_task

logger = logging.getLogger(__name__)

DEFAULT_OUT = "runs/bench"


@dataclass
class BenchResult:
    """What ``bench`` wrote: the report dict (= ``bench.json``), the Markdown table and the file paths."""

    report: dict[str, Any]
    markdown: str
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """``"model: stage: message"`` for every per-model failure recorded in the run."""
        return [f"{m['name']}: {e['stage']}: {e['error']}" for m in self.report["models"] for e in m["errors"]]


def bench(pattern: str | None = None, *, out: str | Path = DEFAULT_OUT, weights_dir: str | None = None,
          data: str = "synthetic", lm_corpus: str = "stdlib", quick: bool = False, latency: bool = True,
          deploy: bool = True, fresh: bool = False, threads: int | None = None, settings: BenchSettings | None = None,
          progress: bool = True,
          command: Sequence[str] | None = None) -> BenchResult:
    """Benchmark the registry models matching ``pattern``: cost, latency and measured/reported quality.

    Args:
        pattern: fnmatch pattern over registry names (``'leyolo-*'``), or several separated by commas
            (``'leyolo-nano,pi-gpt2-tiny-*'``); ``None``: every model.
        out: output folder (``bench.json``, ``bench.md``, the three PNGs, and ``cache/`` of trained runs).
        weights_dir: extra folder searched for weights before the local weights folder.
        data: ``synthetic`` or a detection dataset (data YAML, COCO JSON, folder) for measured mAP.
        lm_corpus: corpus for measured perplexity (``stdlib`` or a folder of text files).
        quick: tiny budgets (``BenchSettings.quick_preset``): a smoke run in seconds.
        latency: measure batch-1 latency (eager and onnxruntime).
        deploy: with ``latency``, the detectors' deployment rows (every runtime, int8 speed-up and accuracy,
            YOLO11n / YOLOv8n reference points) and ``pareto_latency.png``.
        fresh: retrain instead of reusing cached training runs.
        threads: torch / onnxruntime intra-op threads for the run (``None``: the settings', 0 = torch's
            default); restored afterwards.
        settings: full control over budgets; ``pattern`` / ``data`` / ``lm_corpus`` / ``weights_dir`` /
            ``latency`` / ``deploy`` passed here override its fields.
        progress: progress bars on stderr.
        command: the command line, recorded in the report.

    Returns:
        :class:`BenchResult`.

    Raises:
        ValueError: no model matches ``pattern``.
        FileNotFoundError: ``data``, ``lm_corpus`` or ``weights_dir`` does not exist.
    """
    start, cpu_start = time.perf_counter(), cpu_seconds()
    base = settings or (BenchSettings.quick_preset() if quick else BenchSettings())
    settings = base.replace(pattern=pattern if pattern is not None else base.pattern, data=data or base.data,
                            lm_corpus=lm_corpus or base.lm_corpus, weights_dir=weights_dir or base.weights_dir,
                            latency=latency and base.latency, deploy=deploy and base.deploy,
                            threads=base.threads if threads is None else threads)
    cards = _select(settings)
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _run(settings, cards, Path(out), fresh, progress, command, start, cpu_start)
    finally:
        torch.set_num_threads(threads_before)


def _run(settings: BenchSettings, cards: list[ModelCard], out: Path, fresh: bool, progress: bool,
         command: Sequence[str] | None, start: float, cpu_start: float) -> BenchResult:
    provenance = run_provenance()
    timer = StageTimer()
    entries = {card.name: _entry(card, settings) for card in cards}
    runner = _Runner(settings, entries, timer, progress, out / "cache", fresh)
    runner.prepare_data(cards)
    runner.stage("cost", cards, _cost)
    runner.stage("quality: detectors", [c for c in cards if c.task == DETECTION], _detector_quality)
    runner.stage("quality: transformers", [c for c in cards if c.task == LANGUAGE_MODELING], _lm_quality)
    references: list[dict[str, Any]] = []
    notes: list[str] = []
    if settings.latency:
        runner.stage("latency", cards, _latency)
        if settings.deploy:
            runner.stage("deployment", [c for c in cards if c.task == DETECTION], _deployment)
            if settings.deploy_references and any(c.task == DETECTION for c in cards):
                with _timed(timer, "deployment: YOLO references", len(REFERENCES)):
                    try:
                        references, ref_notes = run_isolated(_references, settings)
                        notes += ref_notes
                    except Exception as err:  # optional reference points must not lose the models' numbers
                        notes.append(f"YOLO reference points not measured: {type(err).__name__}: {err}")
    report = build_report(settings, list(entries.values()), timer, command=command, references=references,
                          notes=notes, provenance=provenance)
    files, markdown = write_outputs(report, out, timer, start=start, cpu_start=cpu_start)
    return BenchResult(report=report, markdown=markdown, out=out, files=files)


# -- selection ---------------------------------------------------------------------------------------
def _select(settings: BenchSettings) -> list[ModelCard]:
    names: list[str] = []
    for part in (settings.pattern or "").split(",") if settings.pattern else [None]:
        names += [n for n in list_models(part.strip() if part else None) if n not in names]
    if not names:
        raise ValueError(f"No registered model matches {settings.pattern!r}; see zoo list (patterns use "
                         "fnmatch wildcards, e.g. 'leyolo-*' or 'pi-gpt2-tiny-*').")
    for path, flag in ((settings.weights_dir, "--weights-dir"),
                       (None if settings.data == "synthetic" else settings.data, "--data")):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{flag} {path} does not exist.")
    corpus = settings.lm_corpus
    if corpus != "stdlib" and ":" not in corpus and not Path(corpus).exists():
        raise FileNotFoundError(f"--lm-corpus {corpus} does not exist (give 'stdlib' or a folder of text files).")
    return sorted((get_card(n) for n in names), key=_table_order)


def _table_order(card: ModelCard) -> tuple[Any, ...]:
    """Detectors smallest first; transformers by size (tiny, small, small-l18), then in the spec's variant
    order (the SM+LN+G baseline first), which is how the papers' tables read."""
    if card.task == LANGUAGE_MODELING:
        size, variant = card.extra.get("size"), card.extra.get("variant")
        sizes = ["tiny", *[s for s in SIZES if s != "tiny"]]
        return (1, sizes.index(size) if size in sizes else 99,
                list(VARIANTS).index(variant) if variant in VARIANTS else 99, card.name)
    return (0, card.n_params, card.input_size, card.name)


def _sizes(card: ModelCard, settings: BenchSettings) -> list[int]:
    """Input sizes measured for ``card``: its registered ones, or ``settings.imgsz`` for detectors."""
    takes_imgsz = get_task(card.task).size_arg == "imgsz"
    return [settings.imgsz] if takes_imgsz and settings.imgsz else list(card.input_sizes)


def _entry(card: ModelCard, settings: BenchSettings) -> dict[str, Any]:
    sizes = _sizes(card, settings)
    return {"name": card.name, "family": card.family, "task": card.task, "size": card.extra.get("size"),
            "variant": card.extra.get("paper_name"), "description": card.description,
            "input_size": sizes[0] if len(sizes) == 1 else card.input_size, "input_sizes": sizes,
            "registered_input_sizes": list(card.input_sizes), "source": card.source,
            "params": None, "cost": {}, "pi_cost": None, "reported": [], "latency": None, "deployment": None,
            "quality": {"measured": None, "notes": []}, "training": None, "errors": []}


# -- stages -------------------------------------------------------------------------------------------
class _timed:
    def __init__(self, timer: StageTimer, stage: str, items: int = 0) -> None:
        self.timer, self.stage, self.items = timer, stage, items

    def __enter__(self) -> None:
        self.start, self.cpu = time.perf_counter(), cpu_seconds()

    def __exit__(self, *exc: Any) -> None:
        self.timer.add(self.stage, time.perf_counter() - self.start, self.items, cpu_seconds() - self.cpu)


@dataclass
class _Runner:
    settings: BenchSettings
    entries: dict[str, dict[str, Any]]
    timer: StageTimer
    progress: bool
    cache: Path
    fresh: bool

    def bar(self, items: Sequence[Any], desc: str) -> tqdm:
        return tqdm(items, desc=f"bench {desc}", unit="model", disable=not self.progress or not items,
                    file=sys.stderr, dynamic_ncols=True, leave=True)

    def stage(self, name: str, cards: list[ModelCard], fn: Callable[[_Runner, ModelCard, dict[str, Any]], None]
              ) -> None:
        if not cards:
            return
        with _timed(self.timer, name, len(cards)):
            bar = self.bar(cards, name)
            for card in bar:
                bar.set_postfix_str(card.name, refresh=True)
                entry = self.entries[card.name]
                try:
                    fn(self, card, entry)
                except Exception as err:  # one model's failure must not lose the other 39 models' numbers
                    logger.warning("%s: %s failed: %s", card.name, name, err, exc_info=logger.isEnabledFor(10))
                    entry["errors"].append({"stage": name, "error": f"{type(err).__name__}: {err}"})

    def prepare_data(self, cards: list[ModelCard]) -> None:
        """Generate / tokenize the datasets the quality stage will read, so their one-time cost is visible."""
        jobs: list[tuple[str, Callable[[], Any]]] = []
        if uses_synthetic(self.settings) and any(c.task == DETECTION and c.name in self.settings.det_train_models
                                                 for c in cards):
            jobs.append(("synthetic shapes set", lambda: synthetic_data(self.settings)))
        if any(c.task == LANGUAGE_MODELING for c in cards):
            jobs.append((f"LM corpus '{self.settings.lm_corpus}' (byte tokens)",
                         lambda: prepare_lm_data(self.settings.lm_corpus, tokenizer="byte", progress=self.progress)))
        if not jobs:
            return
        with _timed(self.timer, "data (generate / tokenize, cached)", len(jobs)):
            bar = tqdm(jobs, desc="bench data", unit="set", disable=not self.progress, file=sys.stderr,
                       dynamic_ncols=True)
            for label, job in bar:
                bar.set_postfix_str(label, refresh=True)
                job()


def _cost(runner: _Runner, card: ModelCard, entry: dict[str, Any]) -> None:
    cost = model_cost(card, entry["input_sizes"])
    entry.update(params=cost["params"], cost=cost["cost"], pi_cost=cost.get("pi_cost"), reported=cost["reported"])


def _detector_quality(runner: _Runner, card: ModelCard, entry: dict[str, Any]) -> None:
    _store_quality(entry, detector_quality(card, runner.settings, runner.cache, fresh=runner.fresh))
    q = entry["quality"]["measured"]
    if q is not None and str(q["imgsz"]) not in entry["cost"]:  # evaluated at an unregistered size: count it too

        entry["cost"][str(q["imgsz"])] = {**size_cost(card, None, q["imgsz"]), "registered": False}


def _lm_quality(runner: _Runner, card: ModelCard, entry: dict[str, Any]) -> None:
    _store_quality(entry, lm_quality(card, runner.settings, runner.cache, fresh=runner.fresh))


def _store_quality(entry: dict[str, Any], result: dict[str, Any]) -> None:
    entry["quality"] = {"measured": result["measured"], "notes": result["notes"]}
    entry["training"] = result.get("training")


def _latency(runner: _Runner, card: ModelCard, entry: dict[str, Any]) -> None:
    entry["latency"] = model_latency(card, runner.settings, entry["input_size"])


def _deployment(runner: _Runner, card: ModelCard, entry: dict[str, Any]) -> None:
    """Deployment rows with the weights the quality stage used (found or trained), else fresh weights."""
    trained = entry.get("training")
    weights = trained["weights"] if trained else find_weights(card, runner.settings.weights_dir)
    data = synthetic_data(runner.settings) if trained else None
    entry["deployment"] = run_isolated(model_deployment, card, runner.settings, weights=weights, trained_on=data,
                                       trained_size=runner.settings.det_imgsz if trained else None)


def _references(settings: BenchSettings) -> tuple[list[dict[str, Any]], list[str]]:
    """``reference_latency`` with its notes returned (it runs in a spawned worker: ``run_isolated``)."""
    notes: list[str] = []
    return reference_latency(settings, notes), notes

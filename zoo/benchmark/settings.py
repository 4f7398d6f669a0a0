"""What a benchmark run measures and with which budgets: one frozen dataclass, two presets, one hash.

The default preset is what ``make bench`` runs on a fresh 2-core machine with no released weights and no
COCO, sized from measured stage times to finish in well under 15 minutes there (a full run took 8.4 min
on a shared 2-core VM with ``--threads 1``; the README's Benchmark section has the per-stage times):

* every registered model gets its cost (parameters, paper-convention GFLOPs at each registered input size,
  the nonlinearity census; the PI cost estimate for transformers) and its batch-1 CPU latency, eager and
  onnxruntime. Models above ``ort_max_params`` (the GPT-2-small-sized transformers, ~100M+ parameters:
  a 0.5 GB ONNX file each) get eager latency only, with fewer repeats (``latency_repeats_large``).
* quality is measured where it can be made real within the budget: LeYOLO-Nano trained for
  ``det_max_steps`` iterations on the synthetic shapes set, then its COCO-style mAP50-95 on that set's
  val split; every ``tiny`` PI variant trained for ``lm_max_steps`` iterations on the embedded corpus
  (this Python's standard library), then its perplexity on ``lm_val_chunks`` held-out chunks. The
  GPT-2-small-sized variants are not trained (hours of CPU each): their quality column shows the papers'
  numbers, labelled "reported" with the source.

``--quick`` shrinks every budget so a test can run the whole pipeline in seconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.eval.datasets.synthetic import SyntheticConfig

# Sample std of leyolo-nano's final mAP50-95 over seeds 0, 1, 2 with configs/leyolo_synthetic.yaml (160 px,
# batch 16, 256 steps, the default synthetic set): benchmarks/train_seeds.py, README "(issue 15)".
DET_SEED_STD = 0.0391


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of a benchmark run (all recorded in ``bench.json``).

    Attributes:
        pattern: fnmatch pattern over registry names (``None`` = every model).
        data: detection data for measured mAP: ``synthetic`` or a data YAML / COCO JSON / folder.
        lm_corpus: corpus for measured perplexity (``stdlib`` or a folder of text files, see ``zoo.eval.corpus``).
        weights_dir: extra folder searched for weights (``<weights_file>`` or ``<name>.safetensors``) before
            the local weights folder (``$EFFZOO_WEIGHTS``).
        latency: measure batch-1 CPU latency (eager and onnxruntime).
        deploy: the deployment rows of every detector (``zoo.benchmark.deployment``: eager, onnxruntime fp32 /
            int8, OpenVINO fp32 / int8 in one interleaved loop, int8 speed-up and accuracy); needs ``latency``.
        deploy_blocks / deploy_calls: interleaved blocks per runtime and calls per block of that loop.
        deploy_calib_size: int8 calibration inputs of the deployment files.
        deploy_references: time YOLO11n / YOLOv8n (ultralytics' export) as reference points when installed.
        threads: torch intra-op threads for the whole run, onnxruntime's too (0 = torch's default, one per
            core). On a machine shared with other jobs 1 is much faster than 2: a descheduled thread stalls
            its partner at every parallel region.
        imgsz: measure detectors' cost and latency at this size only, instead of their registered sizes.
        latency_repeats / latency_warmup: timed / untimed forwards per model (median reported).
        latency_repeats_large: timed forwards for models above ``ort_max_params`` (each takes ~0.1-1 s).
        ort_max_params: largest model exported to ONNX for onnxruntime latency (0 = no limit).
        det_train_models: detectors trained on the synthetic set when no weights are found (and ``data``
            is ``synthetic``): a short fixed budget only makes sense for the smallest.
        det_recipe: recipe in ``configs/`` the detector run starts from (the keys below override it).
        det_imgsz / det_batch / det_max_steps: that training run (image size, images per step, steps;
            256 = the recipe's 8 epochs of the default set's 512 images).
        det_synthetic: the synthetic set's parameters (``None`` = the default set ``zoo val`` uses).
        det_seed_std: seed-to-seed sample std (mAP50-95, 0-1) of that run at the default recipe, budget and set,
            measured by ``benchmarks/train_seeds.py`` over seeds 0, 1, 2 (README "(issue 15)"); the table
            prints it next to the measured mAP, which is one seed, so a difference can be told from noise.
        lm_train_sizes: PI sizes trained on ``lm_corpus`` when no weights are found.
        lm_recipe: recipe in ``configs/`` the transformer runs start from (the keys below override it).
        lm_batch / lm_max_steps / lm_seq_len: that training run (sequences per step, steps, T).
        lm_val_chunks: held-out T-token chunks in the perplexity (fixed-seed sample; 0 = the whole split).
        seed: seeds model init and data order of every training run.
        quick: the ``--quick`` preset was used (recorded, and shown in the report header).
    """

    pattern: str | None = None
    data: str = "synthetic"
    lm_corpus: str = "stdlib"
    weights_dir: str | None = None
    latency: bool = True
    deploy: bool = True
    deploy_blocks: int = 6
    deploy_calls: int = 2
    deploy_calib_size: int = 8
    deploy_references: bool = True
    threads: int = 0
    imgsz: int | None = None
    latency_repeats: int = 10
    latency_warmup: int = 2
    latency_repeats_large: int = 3
    ort_max_params: int = 20_000_000
    det_train_models: tuple[str, ...] = ("leyolo-nano",)
    det_recipe: str = "leyolo_synthetic.yaml"
    det_imgsz: int = 160
    det_batch: int = 16
    det_max_steps: int = 256
    det_synthetic: SyntheticConfig | None = None
    det_seed_std: float | None = DET_SEED_STD
    lm_train_sizes: tuple[str, ...] = ("tiny",)
    lm_recipe: str = "pi_cpu_tiny.yaml"
    lm_batch: int = 16
    lm_max_steps: int = 80
    lm_seq_len: int = 64
    lm_val_chunks: int = 256
    seed: int = 0
    quick: bool = False

    def __post_init__(self) -> None:
        for key in ("latency_repeats", "latency_repeats_large", "det_batch", "det_max_steps", "lm_batch",
                    "lm_max_steps", "lm_seq_len", "deploy_blocks", "deploy_calls", "deploy_calib_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1.")
        for key in ("latency_warmup", "ort_max_params", "lm_val_chunks", "threads"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 0.")
        for key in ("det_imgsz", "imgsz"):
            value = getattr(self, key)
            if value is not None and (value < 32 or value % 32):
                raise ValueError(f"{key}={value} must be a positive multiple of 32 (LeYOLO's largest stride).")

    @classmethod
    def quick_preset(cls, **overrides: Any) -> BenchSettings:
        """Tiny budgets for tests and smoke runs: seconds, not minutes; numbers are still measured."""
        base: dict[str, Any] = dict(
            imgsz=64, latency_repeats=3, latency_warmup=1, latency_repeats_large=1, deploy_blocks=2, deploy_calls=1,
            deploy_calib_size=2, deploy_references=False, det_imgsz=64, det_batch=4,
            det_max_steps=2, det_synthetic=SyntheticConfig(num_train=8, num_val=4, image_size=64, min_size=12,
                                                           max_size=28, max_objects=2),
            lm_batch=4, lm_max_steps=3, lm_seq_len=32, lm_val_chunks=8, quick=True)
        return cls(**{**base, **overrides})

    def replace(self, **changes: Any) -> BenchSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["det_synthetic"] = dataclasses.asdict(self.det_synthetic) if self.det_synthetic else None
        return out

    def det_seed_noise(self) -> float | None:
        """``det_seed_std`` when the detector run is the one it was measured for (default recipe, size, batch,
        steps and set), else None: a noise figure from another budget would mislead."""
        keys = ("det_recipe", "det_imgsz", "det_batch", "det_max_steps", "det_synthetic")
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in keys}
        return self.det_seed_std if all(getattr(self, k) == defaults[k] for k in keys) else None

    def det_training(self, model: str, data: str) -> dict[str, Any]:
        """``zoo.train`` keys of a detector's bench run: ``det_recipe`` with the budget keys overridden.

        Validation is off (the benchmark evaluates the saved weights itself, once); everything else
        (AdamW, warm-up, EMA, mosaic closed for the last epochs, augmentations) is the recipe's.
        """
        return dict(model=model, config=str(recipe_path(self.det_recipe)), data=data, imgsz=self.det_imgsz,
                    batch=self.det_batch, nbs=self.det_batch, max_steps=self.det_max_steps, seed=self.seed,
                    device="cpu", val=False, plots=False)

    def lm_training(self, model: str) -> dict[str, Any]:
        """``zoo.train`` keys of a transformer's bench run: ``lm_recipe`` (spec §9.2) with the budget overridden.

        The warm-up keeps the recipe's 5 % of the steps; validation and entropy logging are off (the
        benchmark measures perplexity itself, once).
        """
        return dict(model=model, config=str(recipe_path(self.lm_recipe)), data=self.lm_corpus, tokenizer="byte",
                    batch=self.lm_batch, max_steps=self.lm_max_steps, context_length=self.lm_seq_len,
                    seed=self.seed, warmup_steps=max(1, self.lm_max_steps // 20), device="cpu", val=False,
                    plots=False, metrics_every_steps=0, save_every_steps=0)


def recipe_path(name: str) -> Path:
    """A recipe of the repository's ``configs/`` folder (or ``name`` itself when it is a path to a file)."""
    path = Path(name)
    if path.is_file():
        return path
    repo_configs = Path(__file__).resolve().parents[2] / "configs"
    if (repo_configs / name).is_file():
        return repo_configs / name
    raise FileNotFoundError(f"Training recipe {name!r} not found in {repo_configs}; run from an effzoo checkout "
                            "(pip install -e .) or pass the recipe's path.")


def settings_hash(obj: Any, *, length: int = 12) -> str:
    """Short sha256 of a JSON-able object (sorted keys): names cache folders and identifies runs."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]

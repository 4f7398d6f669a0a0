"""What a benchmark run measures and with which budgets: one frozen dataclass, two presets, one hash.

The default preset is what ``make bench`` runs on a fresh 2-core machine with no released weights and no
COCO, sized to finish in well under 15 minutes there (timings in the module ``zoo.benchmark.run``):

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
from typing import Any

from eval.datasets.synthetic import SyntheticConfig


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of a benchmark run (all recorded in ``bench.json``).

    Attributes:
        pattern: fnmatch pattern over registry names (``None`` = every model).
        data: detection data for measured mAP: ``synthetic`` or a data YAML / COCO JSON / folder.
        lm_corpus: corpus for measured perplexity (``stdlib`` or a folder of text files, see ``eval.corpus``).
        weights_dir: extra folder searched for weights (``<weights_file>`` or ``<name>.safetensors``) before
            the local weights folder (``$EFFZOO_WEIGHTS``).
        latency: measure batch-1 CPU latency (eager and onnxruntime).
        latency_repeats / latency_warmup: timed / untimed forwards per model (median reported).
        latency_repeats_large: timed forwards for models above ``ort_max_params`` (each takes ~0.1-1 s).
        ort_max_params: largest model exported to ONNX for onnxruntime latency (0 = no limit).
        det_train_models: detectors trained on the synthetic set when no weights are found (and ``data``
            is ``synthetic``): a short fixed budget only makes sense for the smallest.
        det_imgsz / det_batch / det_max_steps: that training run (image size, images per step, steps).
        det_synthetic: the synthetic set's parameters (``None`` = the default set ``zoo val`` uses).
        lm_train_sizes: PI sizes trained on ``lm_corpus`` when no weights are found.
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
    latency_repeats: int = 15
    latency_warmup: int = 3
    latency_repeats_large: int = 3
    ort_max_params: int = 20_000_000
    det_train_models: tuple[str, ...] = ("leyolo-nano",)
    det_imgsz: int = 256
    det_batch: int = 16
    det_max_steps: int = 240
    det_synthetic: SyntheticConfig | None = None
    lm_train_sizes: tuple[str, ...] = ("tiny",)
    lm_batch: int = 32
    lm_max_steps: int = 150
    lm_seq_len: int = 64
    lm_val_chunks: int = 1024
    seed: int = 0
    quick: bool = False

    def __post_init__(self) -> None:
        for key in ("latency_repeats", "latency_repeats_large", "det_batch", "det_max_steps", "lm_batch",
                    "lm_max_steps", "lm_seq_len"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1.")
        for key in ("latency_warmup", "ort_max_params", "lm_val_chunks"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 0.")
        if self.det_imgsz < 32 or self.det_imgsz % 32:
            raise ValueError(f"det_imgsz={self.det_imgsz} must be a positive multiple of 32 (LeYOLO's stride).")

    @classmethod
    def quick_preset(cls, **overrides: Any) -> BenchSettings:
        """Tiny budgets for tests and smoke runs: seconds, not minutes; numbers are still measured."""
        base: dict[str, Any] = dict(
            latency_repeats=3, latency_warmup=1, latency_repeats_large=1, det_imgsz=64, det_batch=4,
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

    def det_training(self, model: str, data: str) -> dict[str, Any]:
        """``zoo.train`` keys of a detector's bench training run (also its cache key)."""
        return dict(model=model, data=data, imgsz=self.det_imgsz, batch=self.det_batch, max_steps=self.det_max_steps,
                    seed=self.seed, workers=0, device="cpu", val=False, plots=False,
                    # a few hundred steps: warm up for 10 % of them (the COCO recipe's 3 epochs would be all of it)
                    warmup_epochs=0.0, warmup_steps=max(1, self.det_max_steps // 10),
                    # mosaic stays on for the short run (the recipe closes it for the last 10 *epochs*)
                    close_mosaic=0)

    def lm_training(self, model: str) -> dict[str, Any]:
        """``zoo.train`` keys of a transformer's bench training run (also its cache key).

        The rest is ``LMTrainConfig``'s defaults, the CPU recipe of spec pi_transformer.md §9.2 (AdamW 1e-3,
        linear decay, clip 1.0, byte-level tokens); the warm-up keeps the recipe's 5 % of the steps.
        """
        return dict(model=model, data=self.lm_corpus, tokenizer="byte", batch=self.lm_batch,
                    max_steps=self.lm_max_steps, context_length=self.lm_seq_len, seed=self.seed,
                    warmup_steps=max(1, self.lm_max_steps // 20), device="cpu", val=False, plots=False,
                    metrics_every_steps=0, save_every_steps=0)


def settings_hash(obj: Any, *, length: int = 12) -> str:
    """Short sha256 of a JSON-able object (sorted keys): names cache folders and identifies runs."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]

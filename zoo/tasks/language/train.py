"""The language-modelling task: PI-GPT variants trained on a tokenized corpus with the shared engine.

Single process (the CPU recipe of spec pi_transformer.md §9.2, a few minutes on 2 cores)::
    zoo train pi-gpt2-tiny-sm-ln-g --config configs/pi_cpu_tiny.yaml --out runs/tiny-sm-ln-g

Distributed (the paper's CodeParrot recipe, §9.1)::
    torchrun --nproc_per_node 4 -m zoo train pi-gpt2-small-ereg-sm-t-scfuffn --config configs/pi_codeparrot.yaml

Data: ``zoo.eval.lm_data.prepare_lm_data`` (corpus -> tokenizer -> cached token files; rank 0 prepares, the
other ranks wait and read the cache). A batch is ``batch / world`` random T-token chunks per process.
Loss per micro-batch: CE + lambda_eff * L_ent (EReg variants, §6.2), divided by the accumulation.
Every ``metrics_every_steps`` iterations the forward also returns the attention probabilities and the
step log gets per-layer entropies, NaN counts, temperatures and thresholds (``zoo.tasks.language.report``
turns them into ``entropy_metrics.csv``, ``entropy_curves.png`` and ``nan_counts.png``). Validation is
the held-out CE / perplexity on a fixed sample of ``val_batches * batch`` chunks, split over ranks.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from zoo.core import distributed as D
from zoo.core.checkpoint import save_safetensors
from zoo.core.distributed import DistInfo
from zoo.core.errors import DataError
from zoo.core.factory import create_model
from zoo.core.fileio import atomic_path
from zoo.core.registry import get_card
from zoo.eval.lm import ce_sum
from zoo.eval.lm_data import prepare_lm_data
from zoo.models.pi_transformer.entropy import EntropyRegularizer
from zoo.models.pi_transformer.variants import config_for_name
from zoo.tasks.base.training import StepContext, Task
from zoo.tasks.language.objective import LMObjective, layer_metrics, ln_t
from zoo.tasks.language.report import write_training_curves
from zoo.tasks.language.train_config import LMTrainConfig

logger = logging.getLogger(__name__)

THRESHOLDS_SUFFIX = ".thresholds.safetensors"


class LMTask(Task):
    """Train a registered ``language-modeling`` model (a PI-GPT) on a corpus."""

    name = "language-modeling"
    config_class = LMTrainConfig
    loss_names = ("loss", "ce", "ereg")

    def __init__(self, config: LMTrainConfig) -> None:
        super().__init__(config)
        self.config: LMTrainConfig = config
        self._extras: dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, dist: DistInfo) -> None:
        cfg = self.config
        self.dist = dist
        card = get_card(cfg.model)
        if card.task != self.name:
            raise ValueError(f"{cfg.model} is a {card.task} model; the LM trainer trains pi-gpt2-* models.")
        default = self.default_config = config_for_name(cfg.model)
        if (cfg.ereg_lambda >= 0 or cfg.ereg_gamma >= 0) and not default.entropy_reg.enabled:
            logger.info("%s trains without entropy regularization: the recipe's ereg_lambda / ereg_gamma are "
                        "not used (they apply to ereg-* variants)", cfg.model)
        self.seq_len = cfg.context_length or default.context_length
        kwargs = dict(data=cfg.data, tokenizer=self._tokenizer_spec(), vocab_size=cfg.vocab_size,
                      val_data=cfg.val_data, val_fraction=cfg.val_fraction, max_train_docs=cfg.max_train_docs,
                      max_val_docs=cfg.max_val_docs, text_column=cfg.text_column, cache_dir=cfg.cache or None)
        if dist.is_main:
            self.data = prepare_lm_data(**kwargs, progress=True)
        D.barrier()  # the other ranks read what rank 0 wrote
        if not dist.is_main:
            self.data = prepare_lm_data(**kwargs, progress=False)
        self.train_set = self.data.chunks("train", self.seq_len)
        self.val_set = self.data.chunks("val", self.seq_len).subset(cfg.val_batches * cfg.batch, seed=0)
        for split, ds in (("training", self.train_set), ("held-out", self.val_set)):
            if len(ds) == 0:
                raise DataError(f"The {split} split of {self.data.corpus} has no document of at least "
                                f"T={self.seq_len} tokens; use more text or a smaller context_length.")
        logger.info("LM data %s, T=%d: %d train chunks, %d validation chunks, vocabulary %d", self.data.corpus,
                    self.seq_len, len(self.train_set), len(self.val_set), self.data.vocab_size)

    def _tokenizer_spec(self) -> str:
        """``bpe`` reuses the vocabulary saved in the run folder when one is there (a resumed run)."""
        cfg = self.config
        if cfg.tokenizer == "bpe" and cfg.out and (Path(cfg.out) / "tokenizer.json").is_file():
            return str(Path(cfg.out) / "tokenizer.json")
        return cfg.tokenizer

    def build_model(self) -> nn.Module:
        cfg = self.config
        overrides: dict[str, Any] = {"context_length": self.seq_len, "vocab_size": self.data.vocab_size}
        if cfg.temperature_init:
            overrides["temperature_init"] = cfg.temperature_init
        reg_cfg = self.default_config.entropy_reg
        if reg_cfg.enabled and (cfg.ereg_lambda >= 0 or cfg.ereg_gamma >= 0):
            # an override of the model config, so the checkpoint metadata records what was trained
            overrides["entropy_reg"] = dataclasses.replace(
                reg_cfg, lambda_=cfg.ereg_lambda if cfg.ereg_lambda >= 0 else reg_cfg.lambda_,
                gamma=cfg.ereg_gamma if cfg.ereg_gamma >= 0 else reg_cfg.gamma)
        model = create_model(cfg.model, **overrides)
        reg = EntropyRegularizer.for_model(model) if model.config.entropy_reg.enabled else None
        return LMObjective(model, reg, scale_lambda=cfg.ereg_scale).train()

    def train_dataset(self) -> Dataset:
        return self.train_set

    def example_input(self, device: torch.device) -> Tensor:
        return torch.zeros(1, min(self.seq_len, 8), dtype=torch.long, device=device)

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        """Spec §5 groups (decay on 2-D weights only) plus the thresholds, all with the recipe's Adam betas/eps."""
        cfg = self.config
        groups = model.model.optimizer_groups(weight_decay)
        for group, name in zip(groups, ("decay", "no_decay")):
            group["name"] = name
        if model.regularizer is not None:
            groups.append({"params": list(model.regularizer.parameters()), "weight_decay": 0.0, "name": "thresholds"})
        for group in groups:
            group.update(betas=(cfg.momentum, cfg.adam_beta2), eps=cfg.adam_eps)
        return groups

    # -- training -------------------------------------------------------------------------------
    def _metrics_due(self, iteration: int) -> bool:
        every = self.config.metrics_every_steps
        return bool(every) and iteration % every == 0

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> tuple[Tensor, Tensor]:
        tokens = batch.to(ctx.device, non_blocking=True)
        want = self._metrics_due(ctx.iteration)
        with ctx.autocast():
            out = model(tokens, want)
        loss = out.loss / ctx.accumulate
        items = torch.stack([out.loss.detach(), out.ce.detach(), out.ereg.detach()]).float()
        self._extras = self._collect_metrics(D.unwrap_model(model), out.attn, tokens.shape[1]) if want else {}
        return loss, items

    def _collect_metrics(self, objective: LMObjective, attn: list[Tensor], seq_len: int) -> dict[str, Any]:
        """Per-layer metrics, averaged over ranks (NaN counts summed): every rank runs the same collectives."""
        m = layer_metrics(objective, attn)
        m["entropy"] = D.all_reduce_mean(m["entropy"].to(self.dist.device)).cpu()
        m["nan"] = D.all_reduce_sum(m["nan"].to(self.dist.device)).cpu()
        out: dict[str, Any] = {k: [float(v) for v in t.tolist()] for k, t in m.items()}
        out["ln_T"] = ln_t(seq_len)
        return out

    def step_log_extras(self) -> dict[str, Any]:
        extras, self._extras = self._extras, {}
        return extras

    # -- validation and artifacts ---------------------------------------------------------------
    @torch.no_grad()
    def validate(self, model: nn.Module, ctx: StepContext) -> dict[str, float]:
        lm = D.unwrap_model(model).model
        was_training = lm.training
        lm.eval()
        cfg, dist = self.config, ctx.dist
        shard = list(range(dist.rank, len(self.val_set), dist.world_size))
        total = torch.zeros(2, dtype=torch.float64)
        try:
            for i in range(0, len(shard), cfg.batch):
                tokens = torch.stack([self.val_set[j] for j in shard[i:i + cfg.batch]]).to(ctx.device)
                with ctx.autocast():
                    s, c = ce_sum(lm, tokens)
                total += torch.tensor([s, c], dtype=torch.float64)
        finally:
            lm.train(was_training)
        total = D.all_reduce_sum(total.to(ctx.device)).cpu()
        ce = float(total[0] / total[1])
        if dist.is_main and cfg.plots:
            self._write_curves(D.unwrap_model(model), ctx.run_dir)
        ppl = float("nan") if math.isnan(ce) else (math.exp(ce) if ce < 700 else float("inf"))
        return {"val/ce": ce, "val/ppl": ppl, "val/tokens": float(total[1])}

    def _write_curves(self, objective: LMObjective, run_dir: Path) -> None:
        from zoo.models.pi_transformer.plots import plot_thresholds  # deferred: matplotlib is slow to import

        write_training_curves(run_dir, title=self.config.model)
        if objective.regularizer is not None:
            plot_thresholds(objective.regularizer.theta, run_dir / "thresholds.png",
                            title=f"{self.config.model}: learned entropy thresholds")

    def fitness(self, metrics: dict[str, float]) -> float:
        return -metrics["val/ce"]

    def save_weights(self, model: nn.Module, path: Path, *, metrics: dict[str, float]) -> None:
        """PIGPT weights as effzoo safetensors (loadable by ``create_model``), the thresholds beside them, and
        the run's ``tokenizer.json`` for non-byte vocabularies."""
        from safetensors.torch import save_file


        objective = D.unwrap_model(model)
        lm = objective.model
        run_dir = path.parent.parent
        save_safetensors(lm, path, name=self.config.model, source=f"zoo train ({run_dir})",
                         overrides=lm.checkpoint_overrides())
        if objective.regularizer is not None:
            theta = {"theta": objective.regularizer.theta.detach().cpu().contiguous()}
            with atomic_path(path.with_name(path.name.replace(".safetensors", THRESHOLDS_SUFFIX)),
                             suffix=".safetensors") as tmp:
                save_file(theta, str(tmp), metadata={"model": self.config.model, "shape": "n_layer x n_head",
                                                     "units": "fraction of ln T"})
        src = self.data.tokenizer_file
        if src is not None and not (run_dir / "tokenizer.json").is_file():
            with atomic_path(run_dir / "tokenizer.json", suffix=".json") as tmp:
                shutil.copyfile(src, tmp)

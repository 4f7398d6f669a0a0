"""Knowledge distillation of a PI-GPT student from a trained teacher, on the shared training engine.

``zoo distill --teacher pi-gpt2-tiny-sm-ln-g --teacher-weights T.safetensors --student
pi-gpt2-tiny-ereg-sm-t-scfuffn --config configs/pi_distill_tiny.yaml`` -> ``zoo.distill`` -> this task. It
is the LM task (same data, batches, schedule, validation, checkpoints, resume, DDP) with a different
objective: the teacher (eval mode, ``requires_grad=False``, ``no_grad``; reloaded from ``teacher_weights``
on resume, never checkpointed) gives soft targets for the same tokens, and optionally its per-head
attention entropies. MPCFormer (Li et al., ICLR 2023) distils BERT into MPC-friendly students the same way.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.core import distributed as D
from zoo.core.distributed import DistInfo
from zoo.core.checkpoint import read_checkpoint
from zoo.core.errors import CheckpointError
from zoo.core.factory import create_model
from zoo.core.registry import get_card
from zoo.eval.lm import ce_sum
from zoo.models.pi_transformer.hf_gpt2 import copy_matching, init_from_hf
from zoo.tasks.base.training import StepContext
from zoo.tasks.language.distill_config import DistillTrainConfig
from zoo.tasks.language.distill_objective import DistillObjective, head_entropies
from zoo.tasks.language.train import LMTask

logger = logging.getLogger(__name__)


class DistillTask(LMTask):
    """Train ``config.model`` (the student) against ``config.teacher`` loaded from ``config.teacher_weights``."""

    name = "language-modeling"
    config_class = DistillTrainConfig
    loss_names = ("loss", "ce", "kd", "attn_match", "ereg")

    def __init__(self, config: DistillTrainConfig) -> None:
        super().__init__(config)
        self.config: DistillTrainConfig = config
        self.teacher: nn.Module | None = None
        self._teacher_val: dict[str, float] | None = None

    def setup(self, dist: DistInfo) -> None:
        super().setup(dist)
        cfg = self.config
        card = get_card(cfg.teacher)
        if card.task != self.name:
            raise ValueError(f"teacher {cfg.teacher} is a {card.task} model; distillation needs a language model.")
        teacher = create_model(card.name, checkpoint_path=cfg.teacher_weights)
        tc = teacher.config
        if tc.vocab_size != self.data.vocab_size:
            raise CheckpointError(f"{cfg.teacher_weights}: teacher vocab_size={tc.vocab_size} but the student's data "
                                  f"({cfg.data}, tokenizer {cfg.tokenizer}) has vocab_size={self.data.vocab_size}; "
                                  "distil with the teacher's tokenizer.")
        if tc.n_pos < self.seq_len:
            raise CheckpointError(f"{cfg.teacher_weights}: teacher n_positions={tc.n_pos} < context_length="
                                  f"{self.seq_len}; use context_length <= {tc.n_pos}.")
        if cfg.attn_entropy_weight > 0:
            student = self.default_config
            for key in ("n_layer", "n_head"):
                if getattr(tc, key) != getattr(student, key):
                    raise ValueError(f"attn_entropy_weight > 0 matches heads one to one, but the teacher has "
                                     f"{key}={getattr(tc, key)} and the student {key}={getattr(student, key)}; "
                                     "set attn_entropy_weight: 0 or pick a teacher of the same shape.")
        self.teacher = teacher.to(dist.device).eval().requires_grad_(False)
        logger.info("teacher %s from %s (%d params), alpha=%g tau=%g attn_entropy_weight=%g", cfg.teacher,
                    cfg.teacher_weights, sum(p.numel() for p in teacher.parameters()), cfg.alpha, cfg.tau,
                    cfg.attn_entropy_weight)

    def build_model(self) -> nn.Module:
        cfg = self.config
        objective = DistillObjective(super().build_model(), alpha=cfg.alpha, tau=cfg.tau,
                                     attn_entropy_weight=cfg.attn_entropy_weight).train()
        if cfg.student_init:
            self._init_student(objective.model)
        return objective

    def _init_student(self, student: nn.Module) -> None:
        """Copy the tensors of the teacher (or of a file / HF folder) that fit the student, DistilBERT-style.

        A LayerNorm-free student keeps the teacher's embeddings, attention and (unfused) FFN weights; what
        has no counterpart (fused FFN, scaling gains, temperatures) stays at init, and the log says which.
        """
        cfg = self.config
        source = cfg.student_init
        if source == "teacher":
            report = copy_matching(student, {k: v.to(student.wte.weight.device) for k, v in
                                             self.teacher.state_dict().items()})
        elif Path(source).is_dir():
            report = init_from_hf(student, source)
        else:
            report = copy_matching(student, read_checkpoint(source).state_dict)
        if not report.loaded:
            raise CheckpointError(f"student_init={source!r}: no tensor fits {cfg.model} (names and shapes differ).")
        logger.info("student_init %s: %s", source, report.summary())

    @torch.no_grad()
    def _teacher_targets(self, tokens: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor | None]:
        """Teacher logits (B, T, V) and, when matched, its (L, H) head entropies; eval mode, no graph."""
        assert self.teacher is not None and not self.teacher.training  # set in setup, never trained
        with ctx.autocast():
            if self.config.attn_entropy_weight > 0:
                out = self.teacher(tokens, return_attn=True)
                return out.logits.float(), head_entropies(out.attn).float()
            return self.teacher(tokens).float(), None

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> tuple[Tensor, Tensor]:
        tokens = batch.to(ctx.device, non_blocking=True)
        want = self._metrics_due(ctx.iteration)
        t_logits, t_entropy = self._teacher_targets(tokens, ctx)
        with ctx.autocast():
            out = model(tokens, want, t_logits, t_entropy)
        items = torch.stack([out.loss.detach(), out.ce.detach(), out.kd.detach(), out.attn_match.detach(),
                             out.ereg.detach()]).float()
        self._extras = self._collect_metrics(D.unwrap_model(model), out.attn, tokens.shape[1]) if want else {}
        return out.loss / ctx.accumulate, items

    @torch.no_grad()
    def validate(self, model: nn.Module, ctx: StepContext) -> dict[str, float]:
        """The student's held-out CE / perplexity, plus the teacher's on the same chunks (computed once)."""
        metrics = super().validate(model, ctx)
        if self._teacher_val is None:
            self._teacher_val = self._teacher_metrics(ctx)
        return {**metrics, **self._teacher_val}

    def _teacher_metrics(self, ctx: StepContext) -> dict[str, float]:
        cfg, dist = self.config, ctx.dist
        shard = list(range(dist.rank, len(self.val_set), dist.world_size))
        total = torch.zeros(2, dtype=torch.float64)
        for i in range(0, len(shard), cfg.batch):
            tokens = torch.stack([self.val_set[j] for j in shard[i:i + cfg.batch]]).to(ctx.device)
            with ctx.autocast():
                s, c = ce_sum(self.teacher, tokens)
            total += torch.tensor([s, c], dtype=torch.float64)
        total = D.all_reduce_sum(total.to(ctx.device)).cpu()
        ce = float(total[0] / total[1])
        return {"val/teacher_ce": ce, "val/teacher_ppl": math.exp(ce) if ce < 700 else float("inf")}

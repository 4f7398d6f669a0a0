"""Keys of a distillation recipe (``configs/pi_distill_tiny.yaml``): the LM recipe plus the teacher and the loss.

loss = (1 - alpha) * CE + alpha * tau^2 * KL(teacher || student at temperature tau)
       + attn_entropy_weight * mean_{l,h} (E_student(l,h) - E_teacher(l,h))^2   [+ lambda * L_ent for EReg]

The tau^2 factor keeps the soft-target gradients on the scale of the hard-target ones as tau changes
(Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", section 2). The entropy term pulls every
student head's attention entropy (spec §6.1, nats) toward the teacher head at the same (layer, head), which
targets the entropic overload and collapse of LayerNorm-free models (spec §6) directly.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo.tasks.base.recipe import _check_range
from zoo.tasks.language.train_config import LMTrainConfig


@dataclass
class DistillTrainConfig(LMTrainConfig):
    """LM recipe keys plus teacher and distillation-loss keys."""

    teacher: str = ""  # registry name of the teacher (e.g. pi-gpt2-tiny-sm-ln-g or pi-gpt2-tiny-gpt2)
    teacher_weights: str = ""  # its weights: effzoo .safetensors or a Hugging Face GPT-2 folder
    alpha: float = 0.5  # weight of the distillation term; 0 = plain training, 1 = soft targets only
    tau: float = 2.0  # softmax temperature of both teacher and student logits in the KL term
    attn_entropy_weight: float = 0.0  # weight of the per-head attention-entropy matching (0 = off)
    student_init: str = ""  # '' = random init | teacher = copy the teacher's tensors that fit | an effzoo file / HF folder

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self, "alpha", 0, 1)
        _check_range(self, "attn_entropy_weight", 0)
        if not self.tau > 0:
            raise ValueError(f"tau={self.tau!r} is out of range; tau must be > 0 (Hinton et al. use 1-20).")

    def check_teacher(self) -> None:
        """Teacher and weights must be given (by the recipe or the command line; a recipe alone may omit them)."""
        if not self.teacher:
            raise ValueError("teacher is empty; name the teacher model (--teacher pi-gpt2-tiny-sm-ln-g).")
        if not self.teacher_weights:
            raise ValueError("teacher_weights is empty; a distillation needs trained teacher weights "
                             "(--teacher-weights runs/teacher/weights/best.safetensors or an HF folder).")

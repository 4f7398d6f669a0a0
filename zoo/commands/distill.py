"""``zoo distill --teacher T --teacher-weights W --student S --config FILE`` -> ``zoo.distill``."""
from __future__ import annotations

import argparse
import os

from zoo.commands.train import recipe_overrides, report_run
from zoo.core.distributed import cleanup_distributed
from zoo.engine.distill import distill

EPILOG = """examples:
  zoo train pi-gpt2-tiny-sm-ln-g --config configs/pi_cpu_tiny.yaml --out runs/teacher
  zoo distill --teacher pi-gpt2-tiny-sm-ln-g --teacher-weights runs/teacher/weights/best.safetensors \\
      --student pi-gpt2-tiny-ereg-sm-t-scfuffn --config configs/pi_distill_tiny.yaml --out runs/distill
  zoo distill --teacher pi-gpt2-small-gpt2 --teacher-weights hf-gpt2-folder/ --student pi-gpt2-small-sm-scfuffn \\
      --config configs/pi_distill_tiny.yaml --set tokenizer=pretokenized --set alpha=0.9
  zoo distill --resume runs/distill
  torchrun --nproc_per_node 4 -m zoo distill --teacher ... --student ... --config ...

loss = (1 - alpha) CE + alpha tau^2 KL(teacher || student at temperature tau)
       + attn_entropy_weight * mean (E_student(l,h) - E_teacher(l,h))^2   (+ lambda L_ent for ereg-* students)
The run folder is a zoo train run folder; its metrics add val/teacher_ppl on the same held-out chunks.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("distill", help="distil a trained teacher into a PI-GPT student (knowledge distillation)",
                       description="Train a reduced-nonlinearity PI-GPT student against a trained teacher's soft "
                                   "targets (and optionally its attention entropies), on the zoo train engine.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default=None, help="registry name of the student, e.g. pi-gpt2-tiny-sm-scfuffn")
    p.add_argument("--teacher", default=None, help="registry name of the teacher, e.g. pi-gpt2-tiny-sm-ln-g")
    p.add_argument("--teacher-weights", default=None, dest="teacher_weights",
                   help="teacher weights: effzoo .safetensors or a Hugging Face GPT-2 folder")
    p.add_argument("--config", default=None, help="YAML recipe, e.g. configs/pi_distill_tiny.yaml")
    p.add_argument("--alpha", type=float, default=None, help="weight of the KL term in [0, 1]")
    p.add_argument("--tau", type=float, default=None, help="softmax temperature of the KL term (> 0)")
    p.add_argument("--max-steps", type=int, default=None, dest="max_steps", help="iterations")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--out", default=None, help="run folder (default runs/train/STUDENT[-N])")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the distillation run in DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="any recipe key (repeatable), e.g. --set attn_entropy_weight=0.1")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = recipe_overrides(args, ("alpha", "tau", "max_steps", "device", "seed", "out"))
    try:
        result = distill(args.student, teacher=args.teacher, teacher_weights=args.teacher_weights,
                         config=args.config, resume=args.resume, **overrides)
    finally:
        cleanup_distributed()  # under torchrun: leave the process group cleanly, also after an error
    if os.environ.get("RANK", "0") == "0":  # only rank 0 reports
        report_run(result, args.json)
    return 0

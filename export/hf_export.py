"""Export a PI-GPT to a Hugging Face GPT-2 folder that ``GPT2LMHeadModel.from_pretrained`` loads.

``zoo export pi-gpt2-small-gpt2 --weights W --format hf --out DIR`` -> ``export_hf``. The tensor layout
and ``config.json`` come from :mod:`zoo.models.pi_transformer.hf_gpt2`; this module loads the weights,
writes the folder atomically (a temporary sibling folder renamed onto DIR, so a failed export leaves
nothing) and checks parity: the written folder is read back through effzoo's own importer, which needs
no ``transformers``, and its logits must equal the source model's within ``tolerance``.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.core.errors import ExportError, ParityError
from zoo.core.factory import create_model
from zoo.core.registry import get_card
from zoo.models.pi_transformer.hf_gpt2 import (CONFIG_FILE, SAFETENSORS_FILE, hf_config_for, read_hf_folder,
                                               to_hf_state)

HF_TOLERANCE = 1e-5  # max |logit difference| between the source model and the folder read back (float32)


@dataclass
class HFExportResult:
    """Where the folder went and how closely it reproduces the source model."""

    model: str
    path: Path
    max_abs_diff: float
    n_tensors: int

    def summary(self) -> str:
        return (f"{self.model} -> {self.path} (Hugging Face GPT2LMHeadModel, {self.n_tensors} tensors, "
                f"logits max |diff| {self.max_abs_diff:.2e} after reading the folder back)")


def export_hf(model: str, *, weights: str | os.PathLike[str] | None, out: str | os.PathLike[str],
              force: bool = False, tolerance: float = HF_TOLERANCE) -> HFExportResult:
    """Write ``model`` (with ``weights``: effzoo safetensors or an HF folder) as an HF GPT-2 folder ``out``.

    Raises:
        ExportError: the variant has no GPT-2 equivalent (names the config field), or ``out`` exists.
        ParityError: the folder does not reproduce the model's logits; nothing is left at ``out``.
    """
    card = get_card(model)
    if card.family != "pi_transformer":
        raise ExportError(f"--format hf exports PI-GPT models (pi-gpt2-*), not {model} ({card.family}).")
    out = Path(out)
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; choose another --out or pass --force to replace it.")
    net = create_model(card.name, checkpoint_path=weights).eval()
    try:
        config, state = hf_config_for(net.config), to_hf_state(net)
    except ValueError as err:
        raise ExportError(f"{model}: {err}") from err
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_folder(tmp, config, state)
        diff = _parity(net, tmp)
        if not diff <= tolerance:
            raise ParityError(f"the exported folder's logits differ by {diff:.3e} > {tolerance:.0e}; not written.")
        if out.exists():  # --force: the old folder goes only once the new one is complete and checked
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    return HFExportResult(model=card.name, path=out, max_abs_diff=diff, n_tensors=len(state))


def _write_folder(folder: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(state, str(folder / SAFETENSORS_FILE), metadata={"format": "pt"})  # HF reads metadata format=pt
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


@torch.no_grad()
def _parity(net: torch.nn.Module, folder: Path) -> float:
    """Max |logit difference| between ``net`` and the folder read back, on seeded random tokens."""
    ckpt = read_hf_folder(folder)
    back = create_model(ckpt.metadata["suggested_model"], checkpoint_path=folder).eval()
    cfg = net.config
    tokens = torch.randint(0, cfg.vocab_size, (2, min(cfg.n_pos, 64)), generator=torch.Generator().manual_seed(0))
    return float((net(tokens) - back(tokens)).abs().max())

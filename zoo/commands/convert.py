"""``zoo convert SRC DST [--model NAME]`` -> ``read_checkpoint`` + ``create_model`` + ``save_safetensors``."""
from __future__ import annotations

import argparse
from pathlib import Path

from zoo.core.checkpoint import file_sha256, matching_models, read_checkpoint, save_safetensors
from zoo.core.errors import ZooError
from zoo.core.factory import create_model
from zoo.core.fileio import check_output_path
from zoo.core.registry import get_card
from zoo.models.pi_transformer.hf_gpt2 import init_from_hf, pi_overrides_from_hf, read_hf_config


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert", help="convert a checkpoint (official LeYOLO .pt) to effzoo .safetensors",
        description="Convert an official LeYOLO .pt (read without running pickled code) or an effzoo file to "
                    "effzoo .safetensors with metadata (model, num_classes, class names, input size, source). "
                    "The model is inferred from the checkpoint's layers and shapes, never from the file name; "
                    "when that is ambiguous (Medium and Large are the same network) pass --model.",
        epilog="examples:\n  zoo convert LeYOLONano.pt leyolo-nano.safetensors\n"
               "  zoo convert LeYOLOLarge.pt leyolo-large.safetensors --model leyolo-large\n"
               "  zoo convert hf-gpt2-folder/ gpt2.safetensors            # a Hugging Face GPT-2 folder\n"
               "  zoo convert hf-gpt2-folder/ student.safetensors --model pi-gpt2-small-sm-r --partial",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="source checkpoint (.pt or .safetensors)")
    p.add_argument("dst", help="destination .safetensors file")
    p.add_argument("--model", default=None, help="registry name of the model (default: inferred from the weights)")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.add_argument("--partial", action="store_true",
                   help="HF GPT-2 folder into a reduced-nonlinearity PI-GPT: copy the tensors that fit, report "
                        "the ones left at init")
    return p


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"DST must end in .safetensors (got {str(dst)!r}).")
    if dst.exists() and not args.force:
        raise ZooError(f"{dst} already exists; pass --force to overwrite it.")
    if src.resolve() == dst.resolve():
        raise ValueError("SRC and DST are the same file; choose another DST.")
    check_output_path(dst, what="DST")
    if args.partial:
        return _run_partial(args, src, dst)
    name = args.model or _infer_model(src)
    model = create_model(get_card(name).name, checkpoint_path=src)
    save_safetensors(model, dst, name=name, source=f"{src.name} {_digest(src)}")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {dst}: {name}, {len(model.state_dict())} tensors, {n_params:,} params, "
          f"num_classes={getattr(model, 'num_classes', '-')}")
    return 0


def _digest(src: Path) -> str:
    """Provenance of the source: a file's sha256, or a folder's weights file's."""
    if src.is_dir():
        weights = [src / n for n in ("model.safetensors", "pytorch_model.bin") if (src / n).is_file()]
        return f"{weights[0].name} sha256:{file_sha256(weights[0])}" if weights else "folder"
    return f"sha256:{file_sha256(src)}"


def _run_partial(args: argparse.Namespace, src: Path, dst: Path) -> int:
    if not args.model:
        raise ValueError("--partial needs --model NAME: the PI-GPT student to initialise (e.g. pi-gpt2-small-sm-r).")
    card = get_card(args.model)
    if card.family != "pi_transformer" or not src.is_dir():
        raise ValueError("--partial imports a Hugging Face GPT-2 folder into a pi-gpt2-* model.")
    overrides = pi_overrides_from_hf(read_hf_config(src), src / "config.json")
    sizes = {k: overrides[k] for k in ("vocab_size", "n_layer", "n_head", "d_model", "d_ff", "n_positions",
                                       "context_length", "layer_norm_eps")}
    model = create_model(card.name, **sizes)
    report = init_from_hf(model, src)
    save_safetensors(model, dst, name=card.name, source=f"{src.name} {_digest(src)} (partial import)")
    print(f"wrote {dst}: {card.name}, {report.summary()}")
    return 0


def _infer_model(src: Path) -> str:
    """The model recorded in an effzoo file, else the one registered model whose keys and shapes match."""
    ckpt = read_checkpoint(src)
    recorded = ckpt.metadata.get("model")
    if ckpt.metadata.get("format") == "effzoo" and isinstance(recorded, str):
        return recorded
    if isinstance(ckpt.metadata.get("suggested_model"), str):  # an HF GPT-2 folder: its sizes come with it
        return ckpt.metadata["suggested_model"]
    fits = matching_models(ckpt)
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise ZooError(f"{src} fits several models ({', '.join(fits)}); pass --model NAME to choose.")
    raise ZooError(f"{src} matches no registered model's layers; pass --model NAME to see the key/shape diff.")

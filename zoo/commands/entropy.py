"""``zoo entropy NAME --weights W [--text FILE | --corpus DIR|stdlib] [--out DIR]`` -> ``zoo.attention_entropy``.

Writes ``entropy.json`` (the L x H head-entropy matrix, layer means, headwise bins, overload/collapse,
NaN counts, ceilings) and ``entropy_heatmap.png`` (annotated heatmap) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from zoo.commands.options import deprecated_alias
from zoo.core.errors import DataError
from zoo.core.factory import create_model
from zoo.core.fileio import write_json_atomic
from zoo.core.registry import get_card
from zoo.eval.corpus_loader import load_corpus
from zoo.models.pi_transformer.entropy import attention_entropy
from zoo.models.pi_transformer.plots import plot_head_entropy


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "entropy", help="attention-entropy analysis of a trained PI-GPT (matrix JSON + heatmap PNG)",
        description="Head-entropy matrix (nats), layer means, headwise distribution, entropic overload and "
                    "collapse, NaN counts and ceilings (spec pi_transformer.md §6.1) of a PI-GPT with effzoo "
                    "safetensors weights, on text cut into T-token sequences.",
        epilog="examples:\n"
               "  zoo entropy pi-gpt2-tiny-sm-ln-g --weights runs/tiny/best.safetensors --corpus stdlib\n"
               "  zoo entropy pi-gpt2-tiny-sm --weights sm.safetensors --text mycode.py --out runs/entropy-sm\n"
               "  zoo entropy pi-gpt2-small-sm-ln-g --weights w.safetensors --text val.py --tokenizer tok.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. pi-gpt2-tiny-sm-ln-g")
    p.add_argument("--weights", required=True, help="effzoo .safetensors checkpoint of that model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", default=None, help="a text/code file to analyse")
    src.add_argument("--corpus", default=None,
                     help="stdlib (default: this Python's standard library) | folder of text files | list:FILE | "
                          "hf:DIR | languini:DIR; its held-out split is analysed")
    p.add_argument("--tokenizer", default=None,
                   help="Hugging Face tokenizers JSON; required unless the model is byte-level (vocab 256)")
    p.add_argument("--seq-len", type=int, default=None, help="T (default: the model's context length)")
    p.add_argument("--max-seqs", type=int, default=64, help="sequences to average over (default 64)")
    p.add_argument("--batch", type=int, default=8, help="sequences per forward (default 8)")
    deprecated_alias(p, "--batch-size", "--batch", "batch", type=int)
    p.add_argument("--out", default=None, help="output folder (default runs/entropy/NAME)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _token_ids(text: str, vocab_size: int, tokenizer: str | None) -> list[int]:
    if tokenizer is not None:
        from tokenizers import Tokenizer

        ids = Tokenizer.from_file(tokenizer).encode(text).ids
        if ids and max(ids) >= vocab_size:
            raise DataError(f"Tokenizer {tokenizer} produced id {max(ids)} >= the model's vocab_size={vocab_size}; "
                            "use the tokenizer the model was trained with.")
        return ids
    if vocab_size != 256:
        raise ValueError(f"The model has vocab_size={vocab_size}; pass --tokenizer tokenizer.json (the one it was "
                         "trained with). Byte-level text is only for vocab_size=256.")
    return list(text.encode("utf-8"))


def load_sequences(args: argparse.Namespace, vocab_size: int, seq_len: int) -> torch.Tensor:
    """(N, T) token ids from --text or a corpus' held-out split, cut into full T-token chunks (partial dropped)."""
    need = args.max_seqs * seq_len
    ids: list[int] = []
    if args.text:
        source = args.text
        readers = [Path(args.text).read_bytes]
    else:  # the corpus' held-out split (sha256 of each document's path), as zoo eval-lm uses

        corpus = load_corpus(args.corpus or "stdlib")
        source = f"the held-out split of {corpus.describe()}"
        readers = [doc.read for doc in corpus.documents("val")]
        if not readers:
            raise DataError(f"{corpus.describe()} has no held-out documents to analyse; pass --text FILE or a "
                            "larger corpus.")
    for read in readers:
        content = read()
        if isinstance(content, bytes):
            ids.extend(_token_ids(content.decode("utf-8", errors="replace"), vocab_size, args.tokenizer))
        else:  # a pre-tokenized corpus stores ids
            ids.extend(int(i) for i in content)
        if len(ids) >= need:
            break
    n = min(len(ids) // seq_len, args.max_seqs)
    if n == 0:
        raise DataError(f"{source} gives {len(ids)} tokens, fewer than one sequence of {seq_len}; use more text "
                        "or a smaller --seq-len.")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def run(args: argparse.Namespace) -> int:
    for flag in ("max_seqs", "batch"):
        if getattr(args, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be a positive integer.")
    card = get_card(args.name)
    if card.family != "pi_transformer":  # attention entropy is a PI-GPT measurement; a detector has no heads
        raise ValueError(f"{card.name} is a {card.family} {card.task} model; zoo entropy analyses the attention of "
                         "PI-GPT language models (see zoo list 'pi-*').")
    model = create_model(card.name, checkpoint_path=args.weights)
    cfg = model.config
    seq_len = args.seq_len or cfg.context_length
    tokens = load_sequences(args, cfg.vocab_size, seq_len)
    report = attention_entropy(model, tokens, batch_size=args.batch)
    out = Path(args.out) if args.out else Path("runs") / "entropy" / args.name
    data = {"model": args.name, "weights": str(args.weights), **report.to_dict()}
    json_path = write_json_atomic(out / "entropy.json", data)
    png_path = plot_head_entropy(report, out / "entropy_heatmap.png", title=f"{args.name}: head entropy (T={seq_len})")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"model {args.name}: {report.n_sequences} sequences of T={seq_len}; entropies in nats")
        print(f"ceilings: ln T = {report.ln_t:.4f}, causal-uniform = {report.causal_ceiling:.4f}")
        for layer, (mean, nans) in enumerate(zip(report.layer.tolist(), report.nan_counts.tolist())):
            row = " ".join(f"{v:5.2f}" for v in report.head[layer].tolist())
            print(f"L{layer:<3d} mean {mean:5.2f} | {row}" + (f" | NaN {nans:g}" if nans else ""))
        bins = " / ".join(f"{100 * b:.1f}" for b in report.bins)
        print(f"headwise bins [0,M/4) / [M/4,M/2) / [M/2,3M/4) / [3M/4,M]: {bins} %")
        print(f"overload {100 * report.overload:.1f} %, collapse {100 * report.collapse:.1f} %")
        print(f"wrote {json_path} and {png_path}", file=sys.stderr)
    return 0

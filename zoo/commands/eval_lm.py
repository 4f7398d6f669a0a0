"""``zoo eval-lm NAME --weights W [--corpus SPEC] [--json]`` -> ``zoo.tasks.language.evaluate.evaluate_lm`` (held-out perplexity)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.tasks.language.evaluate import evaluate_lm

EPILOG = """examples:
  zoo eval-lm pi-gpt2-tiny-sm-ln-g --weights runs/tiny-sm-ln-g/weights/last.safetensors
  zoo eval-lm pi-gpt2-tiny-sm-ln-g --weights runs/tiny-sm-ln-g/weights/best.safetensors --json
  zoo eval-lm pi-gpt2-tiny-sm-r --weights w.safetensors --corpus my_code/ --max-chunks 2000
  zoo eval-lm pi-gpt2-small-sm-ln-g --weights runs/cp/weights/last.safetensors \\
      --corpus hf:data/codeparrot-ds-train --val-data hf:data/codeparrot-ds-valid --tokenizer tok.json

The held-out split is the documents whose sha256(relative path) falls in the first --val-fraction of
the hash range (the split training used); perplexity = exp(mean CE) over every next-token prediction of
every full T-token chunk. An .onnx file (exported from such weights) is evaluated through ONNX Runtime, an .xml IR through OpenVINO.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval-lm", help="held-out perplexity of a trained PI-GPT (exp of mean next-token CE)",
                       description="Perplexity of a trained language model on the held-out split of a corpus, "
                                   "with the number of chunks and tokens it averaged (spec pi_transformer.md §12).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. pi-gpt2-tiny-sm-ln-g")
    p.add_argument("--weights", required=True, help="effzoo .safetensors written by zoo train (or an exported .onnx / OpenVINO .xml)")
    p.add_argument("--corpus", default="stdlib",
                   help="stdlib (default) | folder of text files | list:FILE | hf:DIR | languini:DIR")
    p.add_argument("--val-data", default="", help="a second corpus used entirely as the held-out split")
    p.add_argument("--val-fraction", type=float, default=0.02, help="held-out share of the hash split (0.02)")
    p.add_argument("--split", default="val", choices=("val", "train"), help="split to evaluate (default val)")
    p.add_argument("--tokenizer", default=None,
                   help="byte | pretokenized | tokenizer.json (default: byte for 256-id models, else the "
                        "tokenizer.json saved with the run)")
    p.add_argument("--seq-len", type=int, default=None, help="T (default: the model's context length)")
    p.add_argument("--batch", type=int, default=32, help="chunks per forward (default 32)")
    p.add_argument("--max-chunks", type=int, default=0, help="evaluate a fixed-seed sample of N chunks (0 = all)")
    p.add_argument("--cache", default=None, help="token-file cache folder (default $EFFZOO_CACHE/lm)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA when available)")
    p.add_argument("--json", action="store_true", help="print a JSON object (perplexity, tokens, chunks, ...)")
    return p


def run(args: argparse.Namespace) -> int:
    for flag in ("batch", "max_chunks", "seq_len"):
        value = getattr(args, flag)
        if value is not None and (value < 0 or (flag != "max_chunks" and value == 0)):
            raise ValueError(f"--{flag.replace('_', '-')}={value} must be a positive integer.")
    if args.corpus.strip() == "" or (args.corpus != "stdlib" and not _corpus_exists(args.corpus)):
        raise FileNotFoundError(f"--corpus {args.corpus!r} not found: use 'stdlib', a folder of text files, "
                                "'list:FILE', 'hf:DIR' or 'languini:DIR'.")
    result = evaluate_lm(args.name, args.weights, data=args.corpus, split=args.split, tokenizer=args.tokenizer,
                         seq_len=args.seq_len, batch_size=args.batch, max_chunks=args.max_chunks,
                         val_fraction=args.val_fraction, val_data=args.val_data, cache_dir=args.cache,
                         device=args.device, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        ppl = "NaN (diverged)" if result["perplexity"] is None else f"{result['perplexity']:.4f}"
        print(f"{args.name} on {result['corpus']} [{result['split']}]")
        print(f"perplexity {ppl}  (CE {result['ce']} nats)")
        print(f"{result['chunks']} chunks of T={result['seq_len']}, {result['tokens']} predicted tokens, "
              f"batch {result['batch_size']}")
    return 0


def _corpus_exists(spec: str) -> bool:
    """Whether the path a --corpus spec names exists (so a typo is blamed on --corpus, before the model loads)."""
    for prefix in ("list:", "hf:", "languini:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
    return Path(spec).exists()

"""Forward throughput (tokens/s) of PI-GPT small: SM+LN+G vs EReg(SM(t)+ScFuFFN), eager and compiled.

Both models are the registry's ``pi-gpt2-small-*`` at T = 128, batch 8, in eval mode under
``torch.inference_mode``; the logits of every position are computed (no KV cache). When the optional peer
``transformers`` is installed, Hugging Face ``GPT2LMHeadModel`` of the same size (L12 H12 d768, same
vocabulary and positions, SDPA attention) runs in the same process, and each row reports its throughput
as a ratio against it (target >= 1.0 for our SM+LN+G). Cases are interleaved (rotating order) so load
drifting on a shared machine hits all of them alike; medians of ``--repeats`` with min-max spread.

    python benchmarks/pi_forward.py                                  # CUDA if available, else CPU
    python benchmarks/pi_forward.py --device cpu --repeats 3 --no-compile --out runs/pi_forward.md
    python benchmarks/pi_forward.py --dtype bf16                      # autocast on CUDA
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

import zoo
from zoo.core.fileio import write_text_atomic

MODELS = {"SM+LN+G": "pi-gpt2-small-sm-ln-g", "EReg(SM(t)+ScFuFFN)": "pi-gpt2-small-ereg-sm-t-scfuffn"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hf_gpt2(vocab_size: int, n_positions: int) -> tuple[nn.Module | None, str]:
    """HF GPT2LMHeadModel of GPT-2 small size, or (None, why) when transformers is not installed."""
    try:
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None, "transformers is not installed (optional peer): HF GPT2LMHeadModel row skipped"
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=768, n_layer=12, n_head=12,
                        use_cache=False, bos_token_id=0, eos_token_id=0)  # ids must lie in the vocabulary
    try:
        config._attn_implementation = "sdpa"
    except (AttributeError, ValueError):  # older/newer config API: keep its default attention
        pass
    return GPT2LMHeadModel(config).eval(), f"transformers {transformers.__version__}"


def _forward(model: nn.Module, tokens: torch.Tensor, autocast: Callable[[], object], hf: bool) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode(), autocast():
            out = model(tokens)
            _ = out.logits if hf else out
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="autocast dtype (CUDA only; CPU runs fp32)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face GPT-2 row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if min(args.repeats, args.batch, args.seq_len) < 1 or args.warmup < 0:
        parser.error("--repeats, --batch and --seq-len must be >= 1, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    device = torch.device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if device.type != "cuda":
        dtype = None

    def autocast() -> object:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()

    tokens = torch.randint(0, 50_000, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(0))
    tokens = tokens.to(device)
    cases: dict[str, Callable[[], None]] = {}
    notes: list[str] = []
    for label, name in MODELS.items():
        model = zoo.create_model(name, context_length=args.seq_len).to(device).eval()
        cases[f"{label} eager"] = _forward(model, tokens, autocast, hf=False)
        if not args.no_compile:
            try:
                compiled = torch.compile(model)
                _forward(compiled, tokens, autocast, hf=False)()  # compile now, so failures are caught here
                cases[f"{label} compiled"] = _forward(compiled, tokens, autocast, hf=False)
            except Exception as err:  # noqa: BLE001 - any backend failure just drops the row, with a note
                notes.append(f"torch.compile failed for {label}: {type(err).__name__}: {str(err).splitlines()[0]}")
    hf_label = None
    if not args.no_hf:
        hf_model, note = _hf_gpt2(50_000, args.seq_len)
        notes.append(note)
        if hf_model is not None:
            hf_label = "HF GPT2LMHeadModel eager"
            cases[hf_label] = _forward(hf_model.to(device), tokens, autocast, hf=True)

    names = list(cases)
    for _ in range(args.warmup):
        for fn in cases.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.repeats):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            _sync(device)
            start = time.perf_counter()
            cases[n]()
            _sync(device)
            times[n].append(time.perf_counter() - start)

    n_tokens = args.batch * args.seq_len
    base = statistics.median(times["SM+LN+G eager"])
    hf_time = statistics.median(times[hf_label]) if hf_label else None
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    lines = [
        f"# PI-GPT small forward throughput ({device_name}, torch {torch.__version__}, "
        f"{args.dtype if dtype else 'fp32'}, batch {args.batch}, T {args.seq_len}, "
        f"{torch.get_num_threads()} CPU threads, median of {args.repeats})",
        "",
        "| case | median ms | min-max ms | tokens/s | vs SM+LN+G eager | vs HF GPT-2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        med = statistics.median(times[n])
        vs_hf = f"{hf_time / med:.2f}x" if hf_time else "-"
        lines.append(f"| {n} | {1e3 * med:.1f} | {1e3 * min(times[n]):.1f}-{1e3 * max(times[n]):.1f} | "
                     f"{n_tokens / med:,.0f} | {base / med:.2f}x | {vs_hf} |")
    lines += ["", *(f"note: {n}" for n in notes)]
    table = "\n".join(lines)
    print(table)
    if args.out:
        write_text_atomic(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

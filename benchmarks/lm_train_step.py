"""Training-step throughput (tokens/s) of PI-GPT, with and without the entropy metrics, vs HF GPT-2.

One step = forward, next-token CE (+ lambda_eff * L_ent for EReg), backward, AdamW step, exactly what the
LM task runs (``zoo.tasks.language.objective.LMObjective``). Cases, for each size (``tiny``: the CPU recipe,
L4 H4 d128, T 64, batch 32; ``small``: GPT-2 small, T 128):

* ``SM+LN+G``: the plain step (SDPA attention path) -- the baseline of every ratio;
* ``SM+LN+G + entropy metrics``: a metrics step (explicit attention path returning the probabilities,
  plus per-layer entropy / NaN counts); its cost is paid once every ``metrics_every_steps`` iterations,
  so the table also gives the amortised overhead at the recipes' cadences (target <= 10 %);
* ``EReg(SM(t)+ScFuFFN)``: the regularized model (needs the probabilities at every step);
* ``HF GPT2LMHeadModel``: Hugging Face's GPT-2 of the same size (same L, H, d, d_ff, vocabulary,
  positions; GELU-new, SDPA), when the optional peer ``transformers`` is installed (else a note).

Cases are interleaved (rotating order) so load drift on a shared machine hits all alike; medians of
``--repeats`` with the min-max spread.

    python benchmarks/lm_train_step.py                                   # CUDA if available, else CPU
    python benchmarks/lm_train_step.py --device cpu --threads 1 --repeats 5 --small-batch 1
    python benchmarks/lm_train_step.py --sizes tiny --out runs/lm_train_step.md
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from zoo.models.pi_transformer.entropy import EntropyRegularizer

import zoo
from zoo.core.fileio import write_text_atomic
from zoo.tasks.language.objective import LMObjective, layer_metrics

CADENCES = (25, 100)  # metrics_every_steps of configs/pi_cpu_tiny.yaml and of a typical long run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pi_step(name: str, tokens: torch.Tensor, autocast: Callable[[], object], *, metrics: bool) -> Callable[[], None]:
    model = zoo.create_model(name, context_length=tokens.shape[1], vocab_size=256 if "tiny" in name else 50_000)
    reg = EntropyRegularizer.for_model(model) if model.config.entropy_reg.enabled else None
    objective = LMObjective(model, reg).to(tokens.device).train()
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-4)

    def step() -> None:
        with autocast():
            out = objective(tokens, metrics)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if metrics:
            layer_metrics(objective, out.attn)
    return step


def _hf_step(size: str, tokens: torch.Tensor, autocast: Callable[[], object]) -> tuple[Callable[[], None] | None, str]:
    try:
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None, "transformers is not installed (optional peer): HF GPT2LMHeadModel rows skipped"
    cfg = zoo.create_model(f"pi-gpt2-{size}-sm-ln-g", context_length=tokens.shape[1],
                           vocab_size=256 if size == "tiny" else 50_000).config
    config = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_pos, n_embd=cfg.d_model, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, n_inner=cfg.ffn_dim, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        use_cache=False, bos_token_id=0, eos_token_id=0)
    try:
        config._attn_implementation = "sdpa"
    except (AttributeError, ValueError):
        pass
    model = GPT2LMHeadModel(config).to(tokens.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with autocast():
            loss = model(tokens, labels=tokens).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, f"transformers {transformers.__version__}"


def _time(cases: dict[str, Callable[[], None]], repeats: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    names = list(cases)
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        for n in names[i % len(names):] + names[:i % len(names)]:
            _sync(device)
            start = time.perf_counter()
            cases[n]()
            _sync(device)
            times[n].append(time.perf_counter() - start)
    return times


def run_size(size: str, batch: int, seq_len: int, args: argparse.Namespace, device: torch.device,
             autocast: Callable[[], object]) -> tuple[list[str], list[str]]:
    vocab = 256 if size == "tiny" else 50_000
    tokens = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    base = f"pi-gpt2-{size}-sm-ln-g"
    cases = {"SM+LN+G": _pi_step(base, tokens, autocast, metrics=False),
             "SM+LN+G + entropy metrics": _pi_step(base, tokens, autocast, metrics=True),
             "EReg(SM(t)+ScFuFFN)": _pi_step(f"pi-gpt2-{size}-ereg-sm-t-scfuffn", tokens, autocast, metrics=False)}
    notes = []
    hf_label = None
    if not args.no_hf:
        hf, note = _hf_step(size, tokens, autocast)
        notes.append(note)
        if hf is not None:
            hf_label = "HF GPT2LMHeadModel"
            cases[hf_label] = hf
    times = _time(cases, args.repeats, args.warmup, device)
    med = {n: statistics.median(t) for n, t in times.items()}
    n_tok = batch * seq_len
    rows = []
    for n, t in times.items():
        vs_hf = f"{med[hf_label] / med[n]:.2f}x" if hf_label else "-"
        rows.append(f"| {size} | {n} | {1e3 * med[n]:.1f} | {1e3 * min(t):.1f}-{1e3 * max(t):.1f} | "
                    f"{n_tok / med[n]:,.0f} | {med['SM+LN+G'] / med[n]:.2f}x | {vs_hf} |")
    extra = med["SM+LN+G + entropy metrics"] / med["SM+LN+G"] - 1
    amortised = ", ".join(f"every {c} steps {100 * extra / c:.2f} %" for c in CADENCES)
    notes.append(f"{size} (batch {batch}, T {seq_len}): a metrics step costs {100 * extra:+.0f} % of a plain step; "
                 f"amortised overhead {amortised} (target <= 10 %)")
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="autocast (CUDA only)")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=("tiny", "small"))
    parser.add_argument("--tiny-batch", type=int, default=32)
    parser.add_argument("--small-batch", type=int, default=None, help="default 8 on CUDA, 1 on CPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face GPT-2 rows")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype] if device.type == "cuda" else None

    def autocast() -> object:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()

    small_batch = args.small_batch or (8 if device.type == "cuda" else 1)
    shapes = {"tiny": (args.tiny_batch, 64), "small": (small_batch, 128)}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    lines = [f"# PI-GPT training step ({device_name}, torch {torch.__version__}, {args.dtype if dtype else 'fp32'}, "
             f"{torch.get_num_threads()} CPU threads, median of {args.repeats})", "",
             "| size | case | median ms | min-max ms | tokens/s | vs SM+LN+G | vs HF GPT-2 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    notes: list[str] = []
    for size in args.sizes:
        rows, size_notes = run_size(size, *shapes[size], args, device, autocast)
        lines += rows
        notes += size_notes
    table = "\n".join([*lines, "", *(f"note: {n}" for n in dict.fromkeys(notes))])
    print(table)
    if args.out:
        write_text_atomic(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

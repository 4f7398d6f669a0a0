"""effzoo's exact GPT-2 preset vs Hugging Face ``GPT2LMHeadModel``, trained identically, side by side.

    flock -x /tmp/effzoo-cpu.lock python benchmarks/lm_vs_hf.py --out runs/lm-vs-hf   # needs the hf extra

For each config (``tiny``: L4 H4 d128 T64 batch 32, 300 steps; ``small``: L12 H12 d768 T64 batch 4, a few
steps, timing only unless --small-steps is raised) both models start from the *same* weights (effzoo's
GPT-2 init, mapped into HF's layout by ``zoo.models.pi_transformer.hf_gpt2.to_hf_state``), see the same
byte windows of the standard library in the same order, and run the same plain loop: AdamW (lr 1e-3,
betas 0.9/0.999, wd 0.1 on 2-D weights), 5 % linear warm-up then linear decay, clip 1.0, fp32, every
dropout 0. Steps alternate between the two models in blocks, so load on the machine hits both alike;
training tokens/s is the median over blocks. Validation perplexity is exp(mean CE) on the same
held-out chunks. Writes ``lm_vs_hf.md`` and ``lm_vs_hf.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.models.pi_transformer.hf_gpt2 import hf_config_for, to_hf_state

CONFIGS = {  # size -> (registry name, overrides, batch, default steps)
    "tiny": ("pi-gpt2-tiny-gpt2", dict(context_length=64, vocab_size=256), 32, 300),
    "small": ("pi-gpt2-small-gpt2", dict(context_length=64, n_positions=64, vocab_size=256), 4, 6),
}
BLOCK = 10  # steps per timing block


def _hf_twin(model):
    import transformers

    cfg = hf_config_for(model.config)
    cfg.update(bos_token_id=None, eos_token_id=None)
    config = transformers.GPT2Config(**{k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype")})
    hf = transformers.GPT2LMHeadModel(config)
    missing, unexpected = hf.load_state_dict(to_hf_state(model), strict=False)
    assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)  # tied head
    hf.tie_weights()
    return hf


def _optimizer(model, lr: float):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.999), eps=1e-8)


def _lr(step: int, steps: int, lr: float) -> float:
    warm = max(1, round(0.05 * steps))
    return lr * (step + 1) / warm if step < warm else lr * max(0.0, (steps - step) / (steps - warm))


def _logits(model, x):
    out = model(x)
    return out.logits if hasattr(out, "logits") else out


def _step(model, opt, x, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
    logits = _logits(model, x)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


@torch.no_grad()
def _val_ppl(model, val: torch.Tensor, batch: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for x in val.split(batch):
        logits = _logits(model, x)
        total += float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                       reduction="sum"))
        count += x[:, 1:].numel()
    model.train()
    return math.exp(total / count)


def run_config(size: str, steps: int, data, val_chunks: int, seed: int) -> dict:
    name, overrides, batch, _ = CONFIGS[size]
    T = overrides["context_length"]
    torch.manual_seed(seed)
    ours = zoo.create_model(name, **overrides).train()
    hf = _hf_twin(ours).train()
    train = data.chunks("train", T)
    val = torch.stack([data.chunks("val", T).subset(val_chunks, seed=0)[i] for i in range(val_chunks)])
    g = torch.Generator().manual_seed(seed)
    batches = [torch.stack([train[int(i)] for i in torch.randint(0, len(train), (batch,), generator=g)])
               for _ in range(steps)]
    models = {"effzoo": (ours, _optimizer(ours, 1e-3)), "hf": (hf, _optimizer(hf, 1e-3))}
    times: dict[str, list[float]] = {"effzoo": [], "hf": []}
    for start in range(0, steps, BLOCK):
        block = range(start, min(start + BLOCK, steps))
        order = ("effzoo", "hf") if (start // BLOCK) % 2 == 0 else ("hf", "effzoo")  # alternate who goes first
        for key in order:
            model, opt = models[key]
            t0 = time.perf_counter()
            for s in block:
                _step(model, opt, batches[s], _lr(s, steps, 1e-3))
            times[key].append(len(block) * batch * T / (time.perf_counter() - t0))
    row = {"size": size, "model": name, "steps": steps, "batch": batch, "seq_len": T,
           "n_params": sum(p.numel() for p in ours.parameters())}
    for key, (model, _) in models.items():
        row[f"{key}_tokens_per_s"] = statistics.median(times[key])
        row[f"{key}_tokens_per_s_spread"] = [min(times[key]), max(times[key])]
        row[f"{key}_val_ppl"] = _val_ppl(model, val, 32)
    row["speedup"] = row["effzoo_tokens_per_s"] / row["hf_tokens_per_s"]
    print(f"[done] {size}: {json.dumps(row)}", file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/lm-vs-hf"))
    p.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(CONFIGS))
    p.add_argument("--tiny-steps", type=int, default=CONFIGS["tiny"][3])
    p.add_argument("--small-steps", type=int, default=CONFIGS["small"][3])
    p.add_argument("--val-chunks", type=int, default=1600, help="held-out T-token chunks (50 batches of 32)")
    p.add_argument("--small-val-chunks", type=int, default=64, help="held-out chunks for the small config "
                                                                   "(GPT-2 small forwards are slow on CPU)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="token cache folder (default: the zoo's)")
    args = p.parse_args(argv)
    try:
        import transformers
    except ImportError:
        print("benchmarks/lm_vs_hf.py needs transformers: pip install 'effzoo[hf]'", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    data = zoo.prepare_lm_data("stdlib", tokenizer="byte", cache_dir=args.cache)
    rows = [run_config(size, args.tiny_steps if size == "tiny" else args.small_steps, data,
                       args.val_chunks if size == "tiny" else args.small_val_chunks, args.seed) for size in args.sizes]
    header = (f"torch {torch.__version__}, transformers {transformers.__version__}, {platform.processor() or platform.machine()}"
              f", {args.threads} threads, fp32, stdlib bytes, seed {args.seed}")
    lines = [header, "", "| config | params | steps x batch x T | val PPL effzoo | val PPL HF | tokens/s effzoo | "
             "tokens/s HF | effzoo / HF |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} (`{r['model']}`) | {r['n_params'] / 1e6:.2f} M | {r['steps']} x {r['batch']} x "
                     f"{r['seq_len']} | {r['effzoo_val_ppl']:.3f} | {r['hf_val_ppl']:.3f} | "
                     f"{r['effzoo_tokens_per_s']:.0f} | {r['hf_tokens_per_s']:.0f} | {r['speedup']:.2f}x |")
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lm_vs_hf.md").write_text(table + "\n")
    (args.out / "lm_vs_hf.json").write_text(json.dumps({"settings": header, "rows": rows}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())

"""``zoo.pi_measure``: one PI-GPT forward under real two-party computation (SPU), measured, not estimated.

``zoo.pi_cost`` prices a config with the papers' published rows or an additive model fitted to them; this
runs the network. The model is folded (weight/spectral norm into plain weights, temperatures and FFN
scales as constants; no FFN fusion, so each variant runs the graph it defines), handed to the isolated
``.venv-mpc`` as safetensors + JSON, and run there by ``spu_worker.py``: client (party 0) holds the
tokens, server (party 1) the weights, both secret-shared, one forward of T tokens producing the next
token's logits (the papers' setting, spec §8.1). Reported: bytes both parties sent, SPU's send-action
count (rounds), wall time on this machine, and the max abs difference to the PyTorch logits (SPU computes
in fixed point and approximates exp, reciprocal, rsqrt and erf).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from zoo.models.pi_transformer.cost import variant_label
from zoo.models.pi_transformer.model import PIGPT

from zoo.core.factory import create_model
from zoo.core.registry import get_card
from zoo.core.sizes import model_input_size
from zoo.mpc.env import WORKER, MpcEnvironmentError, find_mpc_python

logger = logging.getLogger(__name__)

ENGINES = ("spu",)
PROTOCOLS = ("cheetah", "semi2k")
# Why not CrypTen: see README "(issue 19)"; the name is accepted so that the refusal says why.
REFUSED_ENGINES = {"crypten": "crypten 0.4.1 does not import with this torch (it needs torch.onnx._internal."
                              "registration, removed from torch) and is not wired in; use --engine spu"}


@dataclass(frozen=True)
class PIMeasurement:
    """What one measured 2PC forward cost.

    Attributes:
        bytes_sent: bytes both parties sent, in total (party 0 + party 1).
        bytes_per_party: (client, server) bytes sent.
        rounds: SPU's send-action count of the busier party: every message one party sends, an upper bound
            on the protocol's round count (messages sent back to back count separately).
        wall_s: wall time of the protocol run (both parties as threads of one process on this machine,
            in-memory link: no network delay), compile time excluded.
        max_abs_logit_diff: max |logit_MPC - logit_PyTorch| over the compared positions.
        ops: per SPU operator: executions, bytes (both directions), send actions, seconds.
    """

    model: str
    variant: str
    engine: str
    engine_version: str
    protocol: str
    seq_len: int
    bytes_sent: int
    bytes_per_party: tuple[int, int]
    rounds: int
    wall_s: float
    compile_s: float
    max_abs_logit_diff: float
    logits_compared: str
    weights: str
    max_rss_mb: float
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bytes_per_party"] = list(self.bytes_per_party)
        return out


def _build(model: str | PIGPT, weights: str | os.PathLike[str] | None, seq_len: int | None,
           seed: int) -> tuple[PIGPT, str, str]:
    """The PyTorch model in eval mode, its name, and a description of its weights."""
    if isinstance(model, PIGPT):
        if weights is not None:
            raise ValueError("Pass weights only with a registry name, not with a built model.")
        return model.eval(), model.model_name or "PIGPT", "given model"
    card = get_card(model)
    if card.family != "pi_transformer":
        raise ValueError(f"{model!r} is a {card.family} model; pi-measure runs PI-GPT models (zoo list 'pi-*').")
    if weights is not None:
        return create_model(model, checkpoint_path=weights).eval(), model, os.fspath(weights)
    ctx = max(card.input_size, seq_len or 0)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        net = create_model(model, context_length=ctx)
    return net.eval(), model, f"random init (seed {seed})"


def write_handover(net: PIGPT, tokens: np.ndarray, out_dir: Path, *, last_only: bool) -> None:
    """The folded weights as safetensors and the job (folded config, tokens, T) as JSON, for the worker."""
    folded = net.fold(fuse_ffn=False)  # the variant's own graph: an unfused FFN stays unfused
    state = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in folded.state_dict().items()}
    save_file(state, str(out_dir / "weights.safetensors"))
    job = {"config": folded.config.to_dict(), "seq_len": int(len(tokens)), "tokens": [int(t) for t in tokens],
           "last_only": last_only}
    (out_dir / "job.json").write_text(json.dumps(job))


def run_worker(dirs: list[Path], *, mode: str, protocol: str = "cheetah",
               mpc_python: str | os.PathLike[str] | None = None,
               timeout_s: float | None = None) -> list[dict[str, Any]]:
    """Run ``spu_worker.py`` on handover directories; returns each one's result with ``logits``.

    Raises:
        MpcEnvironmentError: no MPC environment, or the worker failed (its last output lines say why).
    """
    python = find_mpc_python(mpc_python)
    cmd = [os.fspath(python), os.fspath(WORKER), *map(os.fspath, dirs), "--mode", mode, "--protocol", protocol]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ""}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as err:
        raise MpcEnvironmentError(f"the SPU worker ran past {timeout_s} s; try a shorter --seq-len") from err
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise MpcEnvironmentError(f"the SPU worker failed (exit {proc.returncode}): {tail}; if the environment "
                                  "is broken, recreate it with `make mpc`")
    out = []
    for d in dirs:
        result = json.loads((d / "result.json").read_text())
        result["logits"] = np.load(d / "logits.npy")
        out.append(result)
    return out


def _tokens(tokens: Any, seq_len: int | None, net: PIGPT, seed: int) -> np.ndarray:
    vocab_size = net.config.vocab_size
    if tokens is None:
        return np.random.default_rng(seed).integers(0, vocab_size, size=seq_len or model_input_size(net))
    arr = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if seq_len is not None and len(arr) != seq_len:
        raise ValueError(f"{len(arr)} tokens were given but seq_len={seq_len}; pass one or make them agree.")
    if arr.size == 0 or arr.min() < 0 or arr.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}) (vocab_size); got {arr.min()}..{arr.max()}.")
    return arr


def pi_measure(model: str | PIGPT, *, weights: str | os.PathLike[str] | None = None, seq_len: int | None = None,
               engine: str = "spu", protocol: str = "cheetah", tokens: Any = None, seed: int = 0,
               all_logits: bool = False, mpc_python: str | os.PathLike[str] | None = None,
               timeout_s: float | None = None) -> PIMeasurement:
    """Run one PI-GPT forward under two-party computation and measure its cost.

    Args:
        model: a registry name (``pi-gpt2-tiny-sm-ln-g``) or a built ``PIGPT``.
        weights: an effzoo ``.safetensors`` checkpoint for ``model`` (default: seeded random init; the
            communication does not depend on the weight values, the logit difference does).
        seq_len: T input tokens (default: the length of ``tokens``, else the model's own size).
        engine: ``spu`` (SecretFlow SPU 0.9.5 in ``.venv-mpc``).
        protocol: ``cheetah`` (2PC, HE matmuls + silent-OT nonlinearities; the papers' BumbleBee descends
            from it) or ``semi2k`` (2PC additive sharing, Beaver triples from a trusted first party, SPU's
            default: a comparison, not a deployment).
        tokens: the client's token ids (default: seeded random ids).
        all_logits: compute and compare the logits of every position (default: the last one, as when
            generating one token).
        mpc_python: the MPC environment's python (default: ``$EFFZOO_MPC_PYTHON`` or ``.venv-mpc``).

    Returns:
        ``PIMeasurement`` (``bytes_sent``, ``rounds``, ``wall_s``, ``max_abs_logit_diff``, ...).

    Raises:
        MpcEnvironmentError: ``.venv-mpc`` missing (run ``make mpc``) or the engine failed.
        ValueError: unknown engine/protocol, bad tokens or sequence length.
    """
    if engine in REFUSED_ENGINES:
        raise ValueError(f"engine={engine!r}: {REFUSED_ENGINES[engine]}.")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not one of {', '.join(ENGINES)}.")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not one of {', '.join(PROTOCOLS)}.")
    if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1):
        raise ValueError(f"seq_len={seq_len!r} must be a positive integer.")
    python = find_mpc_python(mpc_python)  # fail before building anything
    net, name, weights_desc = _build(model, weights, seq_len, seed)
    ids = _tokens(tokens, seq_len, net, seed)
    T = len(ids)
    if T > net.config.n_pos:
        raise ValueError(f"seq_len={T} exceeds the model's n_positions={net.config.n_pos}.")
    with torch.no_grad():
        reference = net(torch.as_tensor(ids)[None])[0].float().numpy()  # (T, V)
    if not all_logits:
        reference = reference[-1:]
    with tempfile.TemporaryDirectory(prefix="effzoo-mpc-") as tmp:
        write_handover(net, ids, Path(tmp), last_only=not all_logits)
        (result,) = run_worker([Path(tmp)], mode="spu", protocol=protocol, mpc_python=python, timeout_s=timeout_s)
    per_party = tuple(int(b) for b in result["bytes_per_party"])
    return PIMeasurement(
        model=name, variant=variant_label(net.config), engine=engine, engine_version=result["engine_version"],
        protocol=protocol, seq_len=T, bytes_sent=sum(per_party), bytes_per_party=per_party,  # type: ignore[arg-type]
        rounds=max(result["send_actions_per_party"]), wall_s=float(result["wall_s"]),
        compile_s=float(result["compile_s"]),
        max_abs_logit_diff=float(np.abs(result["logits"] - reference).max()),
        logits_compared="all positions" if all_logits else "last position", weights=weights_desc,
        max_rss_mb=float(result["max_rss_mb"]), ops=result["ops"])


__all__ = ["PIMeasurement", "pi_measure", "MpcEnvironmentError", "ENGINES", "PROTOCOLS"]

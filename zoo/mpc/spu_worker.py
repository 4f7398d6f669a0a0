"""Run one PI-GPT forward under SPU (SecretFlow) between two local parties; the ``.venv-mpc`` side of pi-measure.

Usage (``zoo.mpc.measure`` calls it; it is a script, run by the MPC environment's python)::

    .venv-mpc/bin/python zoo/mpc/spu_worker.py HANDOVER_DIR [...] --mode spu --protocol cheetah

``HANDOVER_DIR`` holds ``weights.safetensors`` (a folded PIGPT state dict) and ``job.json`` (the folded
``PIConfig``, the tokens, T). The worker writes ``logits.npy`` and ``result.json`` there. ``--mode
plaintext`` runs the same jax.numpy program without MPC (the equality check against PyTorch).

Why two threads and not ``spu.utils.simulation.Simulator``: the simulator hides the link, and the link is
what we measure. Each party gets its own in-memory link and runtime, exactly as the simulator builds
them, with SPU's profiler on at party 0 only, whose last line counts what party 0 sent and received
(what party 1 sent); the per-op lines split it by operator. Communication is independent of the link
type (memory here, TCP in a deployment): the protocol decides every byte.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
from jax_pigpt import flat_forward, forward, onehot_tokens, prepare_params  # noqa: E402  (sibling file)
from safetensors.numpy import load_file  # noqa: E402

PROTOCOLS = ("cheetah", "semi2k")
_LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), send actions (\d+), recv actions (\d+)")
_OP = re.compile(r"- (\S+), executed (\d+) times, duration ([0-9.e+-]+)s, send bytes (\d+) recv bytes (\d+), "
                 r"send actions (\d+), recv actions (\d+)")


@contextmanager
def _captured_fds(path: Path) -> Iterator[None]:
    """Send the process's stdout and stderr (SPU's C++ logger writes there) to ``path`` while inside."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _runtime_config(libspu: Any, protocol: str) -> Any:
    kind = {"cheetah": libspu.ProtocolKind.CHEETAH, "semi2k": libspu.ProtocolKind.SEMI2K}[protocol]
    # FM64 with SPU's default 18 fraction bits: the ring BumbleBee-era SPU benchmarks use for 2PC.
    cfg = libspu.RuntimeConfig(protocol=kind, field=libspu.FieldType.FM64)
    cfg.enable_pphlo_profile = True
    return cfg


def run_spu(fn: Any, args: list[np.ndarray], owners: list[int], protocol: str, log_path: Path) -> dict[str, Any]:
    """Compile ``fn(*args)`` for SPU, run it between 2 in-memory parties, return the output and link counts.

    Args:
        owners: which party secret-shares each argument (0 = client, 1 = server).
    """
    import spu.api as spu_api  # noqa: PLC0415  (the MPC env only)
    import spu.libspu as libspu  # noqa: PLC0415
    from spu.utils import frontend as spu_fe  # noqa: PLC0415

    cfg = _runtime_config(libspu, protocol)
    names = [f"in{i}" for i in range(len(args))]
    t0 = time.perf_counter()
    executable, _ = spu_fe.compile(spu_fe.Kind.JAX, fn, tuple(args), {}, names,
                                   [libspu.Visibility.VIS_SECRET] * len(args), lambda out: ["logits"])
    compile_s = time.perf_counter() - t0
    io = spu_api.Io(2, cfg)
    shares = [io.make_shares(a, libspu.Visibility.VIS_SECRET, owner) for a, owner in zip(args, owners)]
    desc = libspu.link.Desc()
    for rank in range(2):
        desc.add_party(f"party{rank}", f"thread_{rank}")
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def party(rank: int) -> None:
        try:
            link = libspu.link.create_mem(desc, rank)
            rank_cfg = libspu.RuntimeConfig(cfg)
            rank_cfg.enable_pphlo_profile = rank == 0  # one profile: party 0's sends and receives
            rt = spu_api.Runtime(link, rank_cfg)
            for name, share in zip(executable.input_names, shares):
                rt.set_var(name, share[rank])
            rt.run(executable)
            results[rank] = rt.get_var(executable.output_names[0])
        except BaseException as err:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(err)

    with _captured_fds(log_path):
        t0 = time.perf_counter()
        threads = [threading.Thread(target=party, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall_s = time.perf_counter() - t0
    if errors:
        raise errors[0]
    logits = np.asarray(io.reconstruct([results[0], results[1]]), dtype=np.float32)
    return {"logits": logits, "wall_s": wall_s, "compile_s": compile_s, **parse_profile(log_path.read_text())}


def parse_profile(text: str) -> dict[str, Any]:
    """Bytes and send actions per party, and per SPU operator, from party 0's profile lines."""
    link = _LINK.findall(text)
    if len(link) != 1:
        raise RuntimeError(f"expected one SPU 'Link details' line in the profile, found {len(link)}")
    sent0, sent1, actions0, actions1 = map(int, link[0])
    ops = {}
    for name, n, dur, sb, rb, sa, ra in _OP.findall(text):
        ops[name] = {"executed": int(n), "duration_s": float(dur), "bytes": int(sb) + int(rb),
                     "send_actions": max(int(sa), int(ra))}
    return {"bytes_per_party": [sent0, sent1], "send_actions_per_party": [actions0, actions1], "ops": ops}


def run_job(handover: Path, mode: str, protocol: str) -> None:
    """One handover directory in, ``logits.npy`` and ``result.json`` out."""
    job = json.loads((handover / "job.json").read_text())
    cfg, seq_len, last_only = job["config"], int(job["seq_len"]), bool(job["last_only"])
    tokens = np.asarray(job["tokens"], dtype=np.int64)
    params = prepare_params(load_file(str(handover / "weights.safetensors")), cfg, seq_len)
    onehot = onehot_tokens(tokens, cfg["vocab_size"])
    result: dict[str, Any] = {"mode": mode, "seq_len": seq_len, "last_only": last_only}
    if mode == "plaintext":
        t0 = time.perf_counter()
        logits = np.asarray(forward(params, onehot, cfg, last_only), dtype=np.float32)
        result["wall_s"] = time.perf_counter() - t0
    else:
        fn, names = flat_forward(params, cfg, last_only)
        out = run_spu(fn, [onehot, *(params[n] for n in names)], [0] + [1] * len(names), protocol,
                      Path(tempfile.mkdtemp(dir=handover)) / "spu.log")
        logits = out.pop("logits")
        result.update(out, protocol=protocol, n_weight_arrays=len(names))
        import spu  # noqa: PLC0415  (version of the engine that ran)
        result["engine_version"] = getattr(spu, "__version__", "unknown")
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(handover / "logits.npy", logits)
    (handover / "result.json").write_text(json.dumps(result))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("handover", type=Path, nargs="+", help="one or more handover directories (run in order)")
    ap.add_argument("--mode", choices=("plaintext", "spu"), required=True)
    ap.add_argument("--protocol", choices=PROTOCOLS, default="cheetah")
    args = ap.parse_args(argv)
    for handover in args.handover:  # one interpreter for many jobs: jax and SPU load once
        run_job(handover, args.mode, args.protocol)
    return 0


if __name__ == "__main__":
    sys.exit(main())

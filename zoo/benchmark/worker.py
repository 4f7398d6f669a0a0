"""Run one benchmark function in a fresh interpreter: ``run_isolated(fn, *args, **kwargs)``.

Why: once OpenVINO (with NNCF) has run in a process, a later ``fork`` of that process (the DataLoader
workers of the next stage, a subprocess) killed the parent with SIGSEGV (OpenVINO 2026.4, seen in
``zoo bench`` and in pytest). Running the deployment stage in its own interpreter keeps OpenVINO's
runtime and thread pools out of the benchmark process, and times every model in a clean process.

A plain ``subprocess`` of this module's ``_main`` rather than ``multiprocessing``'s spawn:
spawn re-imports the caller's main module, which re-runs a user's script that calls ``zoo.bench()``
without an ``if __name__ == "__main__"`` guard. The call goes to the child as a pickle on its stdin (a
pipe from this process, never a file); the result comes back as JSON (what ``bench.json`` holds anyway).
The child is reaped before this returns, so its CPU time is counted in the stage (``cpu_seconds``).
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.core.fileio import write_json_atomic


class WorkerError(RuntimeError):
    """The isolated call raised (its type and message) or the worker died (its exit status)."""


def run_isolated(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` (a module-level function returning JSON-able data) in a fresh interpreter
    with this process's torch thread count and ``sys.path``."""
    with tempfile.TemporaryDirectory(prefix="effzoo-worker-") as tmp:
        result = Path(tmp) / "result.json"
        payload = pickle.dumps({"fn": fn, "args": args, "kwargs": kwargs, "threads": torch.get_num_threads(),
                                "result": str(result)})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        # -c, not -m: ``python -m`` of a module its own package imports warns (runpy, sys.modules)
        entry = "import sys; from zoo.benchmark.worker import _main; sys.exit(_main())"
        proc = subprocess.run([sys.executable, "-c", entry], input=payload, env=env,
                              stdout=subprocess.DEVNULL, check=False)
        if not result.is_file():
            raise WorkerError(f"{fn.__qualname__} worker exited with status {proc.returncode} and no result "
                              "(its stderr is above)")
        answer = json.loads(result.read_text())
    if "error" in answer:
        raise WorkerError(f"{fn.__qualname__} failed in its worker: {answer['error']}")
    return answer["value"]


def _main() -> int:
    call = pickle.loads(sys.stdin.buffer.read())  # from the parent's pipe only (run_isolated)
    torch.set_num_threads(call["threads"])
    try:
        with contextlib.redirect_stdout(sys.stderr):  # peers' prints stay diagnostics, not the parent's output
            answer = {"value": call["fn"](*call["args"], **call["kwargs"])}
    except Exception as err:  # reported to the parent, which raises it as a WorkerError
        traceback.print_exc(file=sys.stderr)
        answer = {"error": f"{type(err).__name__}: {err}"}
    write_json_atomic(call["result"], answer)
    return 0 if "value" in answer else 1


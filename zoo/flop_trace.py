"""The single trace behind ``zoo.count_flops`` / ``zoo.count_nonlinear``: prepare the model, let fvcore's
``JitModelAnalysis`` trace it with our handles, and collect per-module quantities.

Preparation follows what ultralytics does before it reports GFLOPs (spec leyolo.md §4): a copy, eval
mode, ``fuse()``. Three details keep the graph faithful to what runs:

* every submodule's output is made a graph output while tracing, so modules whose result nobody uses
  (LeYOLO-Medium/Large layers 38-41) are not pruned by the tracer's dead-code elimination; thop counts them;
* ``nn.MultiheadAttention`` is traced through its math path, not the opaque fused fast-path kernel;
* autograd is off: the trace needs shapes only, and recording a backward graph is the slowest part of
  tracing a detector at 640 px.
"""
from __future__ import annotations

import copy
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.flop_handles import op_handles  # first: it imports fvcore with its import-time warning silenced
from fvcore.nn.jit_analysis import JitModelAnalysis  # noqa: E402  (after zoo.flop_handles on purpose)

logger = logging.getLogger(__name__)

_HANDLES = op_handles()
_NO_FORWARD = (nn.Identity, nn.ModuleList, nn.ModuleDict)
_DICT_COPY = {dict: dict, OrderedDict: OrderedDict}  # fast paths for module_copy; other dict types: copy.copy


@dataclass
class Trace:
    """Quantities of one traced forward, keyed as in ``zoo.flop_handles`` (``mac:conv``, ``nl:silu``, ...)."""

    counts: dict[str, Counter]  # module name -> quantity key -> value (descendants included), tree order
    unsupported: Counter  # op -> calls, for ops no handle knows (whole model)
    uncalled: tuple[str, ...]  # modules with a forward that the trace never entered
    params: dict[str, int]  # module name -> parameters (descendants included)
    types: dict[str, str]  # module name -> class name
    fused: bool  # model.fuse() was applied to the traced copy
    input_shapes: list[list[int]]


def trace_model(model: nn.Module, inputs: Tensor | tuple[Any, ...] | list[Any], fused: bool) -> Trace:
    """Trace ``model(*inputs)`` once (fused copy if ``fused`` and the model has ``fuse``) and collect quantities.

    Raises:
        ValueError: ``model`` is not a module, or ``inputs`` is not a tensor / non-empty tuple.
        ZooError: torch.jit cannot trace the forward.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__}).")
    args = _as_tuple(inputs)
    shapes = [list(a.shape) for a in args if isinstance(a, Tensor)]
    with _prepared(model, fused) as (work, did_fuse):
        analysis = (JitModelAnalysis(work, args).set_op_handle(**_HANDLES)
                    .unsupported_ops_warnings(False).uncalled_modules_warnings(False))
        try:
            with torch.no_grad(), _math_attention(), _outputs_kept_alive(work):
                counts = analysis.by_module_and_operator()
        except RuntimeError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
            raise ZooError(f"Could not trace {type(model).__name__} on inputs {shapes}: {first}. "
                           "The forward must take and return tensors (torch.jit.trace).") from err
        modules = dict(work.named_modules())
        params = _param_counts(modules)
        uncalled = tuple(sorted(n for n in analysis.uncalled_modules() if n in modules
                                and not isinstance(modules[n], _NO_FORWARD)
                                and type(modules[n]).forward is not nn.Module.forward))
        unsupported = Counter(analysis.unsupported_ops(""))
    if unsupported:
        logger.warning("no FLOP rule for %s; they are listed in the result's .unsupported",
                       ", ".join(f"{op} ({n}x)" for op, n in sorted(unsupported.items())))
    return Trace(counts={n: counts.get(n, Counter()) for n in modules}, unsupported=unsupported,
                 uncalled=uncalled, params=params, types={n: type(m).__name__ for n, m in modules.items()},
                 fused=did_fuse, input_shapes=shapes)


def _as_tuple(inputs: Tensor | tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    if isinstance(inputs, Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)) and inputs:
        return tuple(inputs)
    raise ValueError(f"inputs must be a tensor or a non-empty tuple of tensors (got {type(inputs).__name__}); "
                     "e.g. torch.zeros(1, 3, 640, 640).")


def _param_counts(modules: dict[str, nn.Module]) -> dict[str, int]:
    """Parameters per module, descendants included: summed bottom-up in one pass.

    A parameter shared by two modules (tied embeddings) is counted once per module that owns it, which
    would overcount its ancestors; then fall back to ``module.parameters()``, which de-duplicates.
    """
    direct = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in modules.items()}
    unique = sum(p.numel() for p in modules[""].parameters())
    if unique != sum(direct.values()):
        return {n: sum(p.numel() for p in m.parameters()) for n, m in modules.items()}
    totals = dict(direct)
    for name in sorted(modules, key=lambda n: -n.count(".") if n else 1):  # deepest first, root last
        if name:
            parent = name.rpartition(".")[0]
            totals[parent] += totals[name]
    return totals


@contextmanager
def _prepared(model: nn.Module, fused: bool) -> Iterator[tuple[nn.Module, bool]]:
    """Yield the module to trace, in eval mode: a fused copy, or ``model`` itself with its flags restored."""
    if fused and callable(getattr(model, "fuse", None)):
        work = module_copy(model).eval()
        out = work.fuse()
        yield (out if isinstance(out, nn.Module) else work).eval(), True
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model, False
    finally:
        for m, mode in modes:
            m.training = mode


def module_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that its ``fuse()`` can rewrite without touching the original.

    ``copy.deepcopy`` walks ~20 bookkeeping dicts per module (a third of the counter's time on
    LeYOLO-Medium). This copies what a fuse changes: the module tree (new objects, new ``__dict__``),
    parameters, buffers and tensor attributes (cloned, so in-place edits stay local), and one level of
    every dict / list / set attribute (hook tables, flags); shared submodules and tied parameters stay
    shared. Other attribute values (configs, names) are shared read-only. A module class with its own
    ``__deepcopy__`` gets ``copy.deepcopy``.
    """
    memo: dict[int, Any] = {}

    def tensor(t: Tensor) -> Tensor:
        if id(t) not in memo:
            clone = t.detach().clone()
            memo[id(t)] = nn.Parameter(clone, t.requires_grad) if isinstance(t, nn.Parameter) else clone
        return memo[id(t)]

    def value(v: Any) -> Any:
        if isinstance(v, nn.Module):
            return module(v)
        if isinstance(v, Tensor):
            return tensor(v)
        if isinstance(v, dict):
            new = _DICT_COPY.get(type(v), copy.copy)(v)  # keeps the subclass (OrderedDict hook tables, ...)
            for k, x in v.items():
                if isinstance(x, (nn.Module, Tensor)):
                    new[k] = value(x)
            return new
        if isinstance(v, (list, set, tuple)):
            items = [value(x) if isinstance(x, (nn.Module, Tensor)) else x for x in v]
            return type(v)(*items) if hasattr(v, "_fields") else type(v)(items)  # namedtuple or plain
        return v

    def module(m: nn.Module) -> nn.Module:
        if id(m) in memo:
            return memo[id(m)]
        if getattr(type(m), "__deepcopy__", None) is not None:
            memo[id(m)] = copy.deepcopy(m)
            return memo[id(m)]
        new = type(m).__new__(type(m))
        memo[id(m)] = new
        object.__setattr__(new, "__dict__", {k: value(v) for k, v in vars(m).items()})
        return new

    return module(model)


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


@contextmanager
def _outputs_kept_alive(model: nn.Module) -> Iterator[None]:
    """Make every submodule's output an extra output of the traced graph while tracing.

    The tracer drops ops whose results nobody uses (dead-code elimination). A module that runs but whose
    output is unused (LeYOLO-Medium/Large layers 38-41, spec leyolo.md §2.8) still costs compute, and thop
    (the paper's counter) counts it; keeping its outputs alive keeps its ops in the graph.
    """
    stash: dict[int, Tensor] = {}  # by id: a Sequential returns its last child's tensor, in-place ops their input

    def grab(module: nn.Module, args: Any, output: Any) -> None:
        for t in _tensors(output):
            stash[id(t)] = t

    def release(module: nn.Module, args: Any, output: Any) -> Any:
        extra = tuple(stash.values())
        stash.clear()
        return (output, extra) if extra else output

    handles = [m.register_forward_hook(grab) for m in model.modules() if m is not model]
    handles.append(model.register_forward_hook(release))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        stash.clear()


@contextmanager
def _math_attention() -> Iterator[None]:
    """Trace ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` through their math path.

    In eval mode without autograd they call one fused "fast path" kernel that hides the projections,
    softmax and norms from the graph; the math path computes the same function with visible ops. The
    switch is torch's own (``torch.backends.mha``) and is restored afterwards.
    """
    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)

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

import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Number
from typing import Any

import torch
from torch import Tensor, nn

from zoo.core.errors import ZooError
from zoo.flops.fused_copy import fused_copy
from zoo.flops.handles import FREE_OPS, op_handles  # first: it imports fvcore with its import-time warning silenced

from fvcore.nn.jit_analysis import (  # isort: skip  (after zoo.flops.handles on purpose, see above)
    JitModelAnalysis,
    Statistics,
    _get_scoped_trace_graph,
    _named_modules_with_dup,
)

logger = logging.getLogger(__name__)

_HANDLES = op_handles()
_NO_FORWARD = (nn.Identity, nn.ModuleList, nn.ModuleDict)
_PRIM_COUNTED = ("prim::PythonOp", "prim::CallFunction")  # prim:: nodes fvcore does not ignore


@dataclass
class Trace:
    """Quantities of one traced forward, keyed as in ``zoo.flops.handles`` (``mac:conv``, ``nl:silu``, ...)."""

    counts: dict[str, Counter]  # module name -> quantity key -> value (descendants included), tree order
    unsupported: Counter  # op -> calls, for ops without a handle (whole model), FREE_OPS included
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
        analysis = (_Analysis(work, args).set_op_handle(**_HANDLES)
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
    unknown = sorted((op, n) for op, n in unsupported.items() if op not in FREE_OPS)
    if unknown:
        logger.warning("no FLOP rule for %s; they are listed in the result's .unsupported",
                       ", ".join(f"{op} ({n}x)" for op, n in unknown))
    return Trace(counts={n: counts.get(n, Counter()) for n in modules}, unsupported=unsupported,
                 uncalled=uncalled, params=params, types={n: type(m).__name__ for n, m in modules.items()},
                 fused=did_fuse, input_shapes=shapes)


class _Analysis(JitModelAnalysis):
    """fvcore's ``JitModelAnalysis`` (same tracer, scopes, handles, ignore rules, results) with a leaner walk.

    fvcore adds every node's ``Counter`` into each ancestor module's ``Counter`` (``+=`` re-scans all keys),
    which costs as much as tracing once handles return several quantities per node. Here each node's
    counts go to its own module only, and modules are added into their ancestors once at the end; the
    statistics are the same as fvcore's ``ancestor_mode("owner")``.
    """

    def _analyze(self) -> Statistics:
        if self._stats is not None:
            return self._stats
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            graph = _get_scoped_trace_graph(self._model, self._inputs, self._aliases)
        own: dict[str, Counter] = {}
        own_unsupported: dict[str, Counter] = {}
        scopes_seen: set[str] = set()
        handles, ignored = self._op_handles, self._ignored_ops
        for node in graph.nodes():
            kind = node.kind()
            if kind == "prim::Constant":  # a third of all nodes; never counted, never unsupported
                continue
            if kind == "prim::PythonOp":  # a torch.autograd.Function: fvcore names it by its Python name
                kind = kind + "." + node.pyname()
            scope = node.scopeName()
            scopes_seen.add(scope)
            handle = handles.get(kind)
            if handle is None:
                if kind not in ignored and not (kind.startswith("prim::") and not kind.startswith(_PRIM_COUNTED)):
                    own_unsupported.setdefault(scope, Counter())[kind] += 1
                continue
            counts = handle(list(node.inputs()), list(node.outputs()))
            if isinstance(counts, Number):
                counts = {self._simplify_op_name(kind): counts}
            own.setdefault(scope, Counter()).update(counts)
        names = [self._aliases[m] for _, m in _named_modules_with_dup(self._model)]
        totals: dict[str, Counter] = {n: Counter() for n in names}
        unsupported: dict[str, Counter] = {n: Counter() for n in names}
        seen: set[str] = set()
        for scope in scopes_seen:  # "a/a.b/a.b.c": the op belongs to a.b.c and, through ownership, to a.b, a, ""
            parts = scope.split("/")
            seen.update(parts)
            ancestors = self._get_all_ancestors(parts[-1])
            seen.update(ancestors)
            for table, source in ((totals, own), (unsupported, own_unsupported)):
                if scope in source:
                    for name in ancestors:
                        table[name].update(source[scope])
        self._stats = Statistics(counts=totals, unsupported_ops=unsupported,
                                 uncalled_mods=set(self._aliases.values()) - seen)
        return self._stats


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
        yield fused_copy(model), True
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model, False
    finally:
        for m, mode in modes:
            m.training = mode


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

"""One FLOP and nonlinearity counter for every model in the zoo, built on fvcore's graph-based counter.

Detectors are judged by FLOPs, private-inference transformers by their nonlinearities; both numbers come
from the same single ``torch.jit`` trace made by fvcore's ``JitModelAnalysis`` with our operator handles
(``zoo.flops.handles``). Being graph-based, it sees every op wherever it is called: ``F.softmax`` inside a
custom attention, ``x.sigmoid()`` in a detection head, a LayerNorm in a hand-written block.

Conventions (``count_flops(..., convention=...)``):

* ``paper`` (default): what the LeYOLO paper and ultralytics report (``../shared/spec/leyolo.md`` §4, thop
  0.1.1 rules): FLOPs = 2 × (multiply-accumulates of conv / linear / matmul, bias not counted
  + 2·numel per normalisation, doubled when affine, i.e. 8 FLOPs per BatchNorm element
  + upsample output elements (nearest; ×11 bilinear ...) + avg-pool outputs). Activations, max-pool,
  concat, residual additions, sigmoid and softmax are free. Evaluated in eval mode on a fused deep copy
  (``model.fuse()`` when the model has one and ``fused=True``), as ultralytics does before it reports.
  thop hooks ``nn.Module`` leaves; here the same rules apply to the corresponding ``aten`` ops wherever
  they are called, which is identical for models built from those modules.
* ``macs``: multiply-accumulates of conv / linear / matmul / bmm / einsum / scaled-dot-product attention
  only (torchvision's "GFLOPs" are these: resnet18 @224 = 1,814,073,344). FLOPs = 2 × MACs.
* ``fvcore``: fvcore's own handles (``FlopCountAnalysis``) on the same eval-mode (fused) model; fvcore counts
  one multiply-add as one flop and adds its own rules for norms and upsampling. Equal to
  ``FlopCountAnalysis(model.eval(), x).total()`` (and its unsupported-op list) for ``fused=False``, except
  that fvcore's own trace prunes modules whose output is never used (LeYOLO-Medium layers 38-41) while
  ours counts everything that runs, like thop.

Every convention traces in eval mode, without autograd; fusing (``fused=True``) works on a copy, so the
model passed in is never modified. Each call traces once: ``FlopResult`` carries all per-module numbers and
the census of that trace; another convention is another call.

The nonlinearity census (``count_nonlinear`` or ``FlopResult.nonlinear``) counts, per forward, the elements
each nonlinearity is applied to: SiLU, GELU, ReLU family (relu, relu6/hardtanh, leaky/p-relu), sigmoid,
hardswish, tanh, exp/log/sqrt/rsqrt/erf, softmax (elements and rows), LayerNorm / RMSNorm / BatchNorm /
GroupNorm (elements, plus rows = one inverse square root each), and max-pool (comparisons =
(window − 1) per output). Softmax follows pi_transformer.md §7: an attention softmax is T_q × T_k
elements per head whatever the mask; ``softmax_valid`` subtracts what a causal
``scaled_dot_product_attention(is_causal=True)`` masks (T(T+1)/2 per head), the only mask visible in the
graph (a mask tensor is data). The census counts every call, wherever it happens: a final LayerNorm is
in ``by_kind['layer_norm']`` (pi_transformer.md §7 lists it apart: read it from ``by_module['ln_f']``), and
BatchNorm is counted although in eval mode it is an affine map that a fuse could fold away.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from zoo.core.errors import did_you_mean
from zoo.flops.handles import FREE_OPS
from zoo.flops.report import census_table, cost_table
from zoo.flops.trace import Trace, trace_model

logger = logging.getLogger(__name__)

# convention -> (unit, {key prefix: weight}); the total is sum(weight x quantity) over the trace's keys.
CONVENTIONS: dict[str, tuple[str, dict[str, int]]] = {
    "paper": ("FLOPs", {"mac": 2, "thop": 2}),
    "macs": ("MACs", {"mac": 1}),
    "fvcore": ("fvcore flops (1 per multiply-add)", {"fv": 1}),
}


@dataclass(frozen=True)
class ModuleCost:
    """One row of the per-module tree (a module's numbers include its descendants).

    Attributes:
        name: dotted module name ("" = the whole model).
        type: class name.
        params: parameters of the analysed (possibly fused) module.
        flops: cost in the result's convention and unit (``FlopResult.unit``; MACs for ``macs``).
        macs: multiply-accumulates of conv / linear / matmul ops in it.
        share: ``flops`` / total (0 when the total is 0).
    """

    name: str
    type: str
    params: int
    flops: int
    macs: int
    share: float


@dataclass(frozen=True)
class NonlinearResult:
    """Nonlinearity census of one forward pass.

    Attributes:
        by_kind: elements per nonlinearity kind (``silu``, ``gelu``, ``relu``, ``sigmoid``, ``hardswish``,
            ``softmax``, ``layer_norm``, ``rms_norm``, ``batch_norm``, ``group_norm``, ``max_pool`` =
            comparisons, ...), kinds with a zero count left out.
        rows: rows per kind: softmax rows, LayerNorm/RMSNorm rows, GroupNorm (sample, group) pairs.
        softmax_valid: softmax elements not removed by a causal SDPA mask (= ``by_kind['softmax']`` when
            no ``is_causal=True`` attention is used).
        by_module: module name -> {kind: elements}, descendants included, modules with none left out.
        module_types: module name -> class name, for every module of the traced model.
        input_shapes: shapes of the traced inputs.
    """

    by_kind: dict[str, int]
    rows: dict[str, int]
    softmax_valid: int
    by_module: dict[str, dict[str, int]]
    module_types: dict[str, str] = field(repr=False)
    input_shapes: list[list[int]]

    @property
    def total(self) -> int:
        """Elements over all kinds (max-pool comparisons included)."""
        return sum(self.by_kind.values())

    def count(self, kind: str, module: str = "") -> int:
        """Elements of ``kind`` in ``module`` (default: the whole model); 0 when there are none.

        Raises:
            KeyError: ``module`` is not a module of the counted model (the message lists close names).
        """
        if module not in self.module_types:
            raise KeyError(f"No module {module!r} in the counted model.{did_you_mean(module, self.module_types)}")
        return self.by_module.get(module, {}).get(kind, 0)

    def table(self, max_depth: int = 3) -> str:
        """Markdown table: one row per module down to ``max_depth``, one column per kind."""
        return census_table(self, max_depth)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_kind": dict(self.by_kind), "rows": dict(self.rows),
                "softmax_valid": self.softmax_valid, "input_shapes": self.input_shapes,
                "by_module": {k: dict(v) for k, v in self.by_module.items()}}


@dataclass(frozen=True)
class FlopResult:
    """What ``count_flops`` measured.

    Attributes:
        convention: ``paper``, ``macs`` or ``fvcore`` (see the module docstring for each rule).
        unit: what ``total`` counts (``FLOPs`` = 2 × MACs for ``paper``; ``MACs``; fvcore's flops).
        total: the count under ``convention``.
        flops: FLOPs under the paper rules (2 × MACs + norm and upsample FLOPs), whatever the convention:
            the same trace gives both, and a FLOP field never holds MACs.
        macs: multiply-accumulates of conv / linear / matmul ops (independent of the convention).
        fused: whether ``model.fuse()`` was applied to the analysed copy.
        input_shapes: shapes of the traced inputs.
        by_operator: operator -> count in ``unit`` (``conv``, ``batch_norm``, ``upsample_nearest2d``, ...).
        modules: per-module tree in ``named_modules`` order (root first).
        unsupported: operator -> calls for ops this convention has no rule for (never silently dropped).
        uncalled_modules: modules with a forward that the trace never entered (dead or called by method).
        nonlinear: nonlinearity census of the same trace.
    """

    convention: str
    unit: str
    total: int
    flops: int
    macs: int
    fused: bool
    input_shapes: list[list[int]]
    by_operator: dict[str, int]
    modules: tuple[ModuleCost, ...] = field(repr=False)
    unsupported: dict[str, int]
    uncalled_modules: tuple[str, ...]
    nonlinear: NonlinearResult = field(repr=False)

    @property
    def gflops(self) -> float:
        """``flops`` / 1e9: paper-rule GFLOPs under every convention (never GMACs)."""
        return self.flops / 1e9

    @property
    def gmacs(self) -> float:
        """``macs`` / 1e9."""
        return self.macs / 1e9

    def module(self, name: str) -> ModuleCost:
        """The tree row of module ``name``; raises KeyError naming close module names."""
        for row in self.modules:
            if row.name == name:
                return row
        raise KeyError(f"No module {name!r} in the counted model.{did_you_mean(name, [m.name for m in self.modules])}")

    def table(self, max_depth: int = 3) -> str:
        """Markdown table like fvcore's ``flop_count_table``: module, type, #params, count, share."""
        return cost_table(self, max_depth)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view; top-level ``total`` is the count under ``convention``."""
        return {
            "total": self.total, "convention": self.convention, "unit": self.unit, "flops": self.flops,
            "gflops": self.gflops, "macs": self.macs, "gmacs": self.gmacs, "fused": self.fused, "input_shapes": self.input_shapes,
            "by_operator": dict(self.by_operator), "unsupported": dict(self.unsupported),
            "uncalled_modules": list(self.uncalled_modules),
            "modules": [dataclasses.asdict(m) for m in self.modules],
            "nonlinear": self.nonlinear.to_dict(),
        }


def count_flops(model: nn.Module, inputs: Tensor | tuple[Any, ...], convention: str = "paper",
                fused: bool = True) -> FlopResult:
    """Count the cost of one forward pass of ``model`` on ``inputs`` (one trace, every statistic).

    Args:
        model: any ``nn.Module`` whose forward ``torch.jit.trace`` can follow (tensor in, tensors out). It is
            not modified: fusing happens on a deep copy, and train/eval flags are restored.
        inputs: a tensor, e.g. (1, 3, H, W) images or (1, T) long tokens, or a tuple of forward arguments.
        convention: ``paper`` | ``macs`` | ``fvcore`` (rules in this module's docstring).
        fused: fuse a deep copy first (``model.fuse()``) when the model has a ``fuse`` method.

    Returns:
        ``FlopResult`` with ``.total`` (int), ``.macs``, ``.modules``, ``.by_operator``, ``.unsupported``,
        ``.nonlinear`` (census), ``.table()`` and ``.to_dict()``.

    Raises:
        ValueError: unknown ``convention`` or inputs that are not tensors.
        ZooError: the model cannot be traced.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}.")
    return _flop_result(trace_model(model, inputs, fused), convention)


def count_nonlinear(model: nn.Module, inputs: Tensor | tuple[Any, ...], fused: bool = False) -> NonlinearResult:
    """Census of the nonlinearities of one forward pass: elements per kind, per module and in total.

    Args:
        model: any traceable ``nn.Module`` (not modified).
        inputs: a tensor or a tuple of forward arguments, e.g. ``torch.zeros(1, T, dtype=torch.long)``.
        fused: count the model after ``model.fuse()`` (on a copy); default False, the model as written.

    Returns:
        ``NonlinearResult``: ``.by_kind``, ``.rows``, ``.softmax_valid``, ``.by_module``, ``.total``,
        ``.count(kind, module)``, ``.table()``, ``.to_dict()``.
    """
    return _census(trace_model(model, inputs, fused))


# -- results ----------------------------------------------------------------------------------------

def _weighted(counts: Mapping[str, float], weights: Mapping[str, int]) -> int:
    total = 0
    for key, value in counts.items():
        weight = weights.get(key.split(":", 1)[0])
        if weight:
            total += weight * value
    return int(round(total))


def _flop_result(trace: Trace, convention: str) -> FlopResult:
    unit, weights = CONVENTIONS[convention]
    root = trace.counts[""]
    total = _weighted(root, weights)
    by_operator: Counter = Counter()
    for key, value in root.items():
        prefix, op = key.split(":", 1)
        if weights.get(prefix):
            by_operator[op] += weights[prefix] * value
    modules = []
    for name, counts in trace.counts.items():
        flops = _weighted(counts, weights)
        modules.append(ModuleCost(name=name, type=trace.types[name], params=trace.params[name], flops=flops,
                                  macs=_weighted(counts, {"mac": 1}), share=flops / total if total else 0.0))
    unsupported = Counter({op: n for op, n in trace.unsupported.items()
                           if convention == "fvcore" or op not in FREE_OPS})
    if convention == "fvcore":  # what fvcore itself would list: also the ops only we have rules for
        unsupported.update({k.split(":", 1)[1]: int(v) for k, v in root.items() if k.startswith("fvskip:")})
    return FlopResult(
        convention=convention, unit=unit, total=total, flops=_weighted(root, CONVENTIONS["paper"][1]),
        macs=_weighted(root, {"mac": 1}), fused=trace.fused,
        input_shapes=trace.input_shapes,
        by_operator={op: int(round(v)) for op, v in sorted(by_operator.items(), key=lambda kv: -kv[1]) if v},
        modules=tuple(modules), unsupported=dict(sorted(unsupported.items())), uncalled_modules=trace.uncalled,
        nonlinear=_census(trace),
    )


def _prefixed(counts: Mapping[str, float], prefix: str) -> dict[str, int]:
    tag = prefix + ":"
    return {k[len(tag):]: int(v) for k, v in sorted(counts.items()) if k.startswith(tag) and v}


def _census(trace: Trace) -> NonlinearResult:
    root = trace.counts[""]
    by_module = {}
    for name, counts in trace.counts.items():
        kinds = _prefixed(counts, "nl")
        if kinds:
            by_module[name] = kinds
    return NonlinearResult(
        by_kind=_prefixed(root, "nl"), rows=_prefixed(root, "rows"),
        softmax_valid=int(root.get("valid:softmax", 0)), by_module=by_module,
        module_types=dict(trace.types), input_shapes=trace.input_shapes,
    )

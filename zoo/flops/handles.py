"""Per-operator handles for ``zoo.flops``: what each traced ``aten::`` op costs, under every convention at once.

fvcore walks the traced graph and calls one handle per node; a handle returns a ``Counter``. Ours return
*raw quantities* under prefixed keys, so that one trace serves every convention and the census:

* ``mac:<op>``   multiply-accumulates of conv / linear / matmul-like ops (bias never counted);
* ``thop:<op>``  extra MAC-equivalents that thop's module rules add (spec leyolo.md §4): normalisation
                 2·numel (×2 when affine), upsample output elements (×1 nearest, ×5 linear, ×11 bilinear,
                 ×259 bicubic, ×31 trilinear), avg-pool output elements, adaptive avg-pool (k + 1)·out;
* ``fv:<op>``    what fvcore's own default handle returns for the node (the ``fvcore`` convention);
* ``fvskip:<op>`` 1 per node that fvcore itself would list as unsupported (so ``fvcore`` reports what it
                 would);
* ``nl:<kind>``  nonlinearity census: elements the nonlinearity is applied to (max-pool: comparisons);
* ``rows:<kind>`` softmax rows, LayerNorm/RMSNorm rows (one inverse square root each), GroupNorm groups;
* ``valid:softmax`` softmax elements left after a causal ``scaled_dot_product_attention`` mask.

A convention is then a weighted sum over key prefixes (see ``zoo.flops.CONVENTIONS``).
Ops in ``FREE_OPS`` cost nothing under every convention (elementwise arithmetic, reductions, indexing):
they are declared, not forgotten. Any other op without a handle is reported as unsupported.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from numbers import Number
from typing import Any

with warnings.catch_warnings():  # fvcore.nn's package import scripts a focal loss: torch warns, nothing to act on
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as _FVCORE_OPS
    from fvcore.nn.jit_analysis import _IGNORED_OPS as _FVCORE_IGNORED
    from fvcore.nn.jit_handles import einsum_flop_jit

Handle = Callable[[list[Any], list[Any]], Counter]


def shape(value: Any) -> list[int]:
    """Static shape of a traced ``torch._C.Value`` (the trace ran on real tensors, so it is complete)."""
    sizes = value.type().sizes() if value.isCompleteTensor() else None
    if sizes is None:
        raise ValueError(f"traced value {value.debugName()} has no static shape")
    return list(sizes)


def numel(value: Any) -> int:
    return math.prod(shape(value))


def _const(value: Any) -> Any:
    return value.toIValue()


def _int_list(value: Any) -> list[int]:
    """An ``int[]`` argument: a graph constant, or a ``prim::ListConstruct`` of constants (kernel sizes)."""
    constant = value.toIValue()
    if constant is not None:
        return [int(v) for v in (constant if isinstance(constant, (list, tuple)) else [constant])]
    node = value.node()
    if node.kind() != "prim::ListConstruct":
        raise ValueError(f"expected a constant int list, got {node.kind()}")
    return [int(v.toIValue()) for v in node.inputs()]


# -- multiply-accumulates ---------------------------------------------------------------------------

def _conv(inputs: list[Any], outputs: list[Any]) -> Counter:
    """Conv / transposed conv: batch x prod(weight) x spatial size (of the output; of the input if transposed).

    That is output elements x C_in/groups x kernel area for a normal conv; bias is not counted (thop, fvcore
    and torch's FlopCounterMode agree on this).
    """
    x, w, out = shape(inputs[0]), shape(inputs[1]), shape(outputs[0])
    transposed = bool(_const(inputs[6]))
    spatial = (x if transposed else out)[2:]
    return Counter({"mac:conv": x[0] * math.prod(w) * math.prod(spatial)})


def _contraction(name: str, k_from: int, k_dim: int) -> Handle:
    """Matmul-like op: output elements x contraction length K (K = shape(inputs[k_from])[k_dim]).

    Covers broadcasting and 1-D operands without special cases, since every output element is one dot
    product of length K.
    """
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({f"mac:{name}": numel(outputs[0]) * shape(inputs[k_from])[k_dim]})
    return handle


def _einsum(inputs: list[Any], outputs: list[Any]) -> Counter:
    """Two operands: product of every index size (each output element sums over the contracted indices).

    More operands: fvcore's contraction-path estimate (one MAC = one flop there too).
    """
    equation = str(_const(inputs[0])).replace(" ", "")
    operands = [shape(v) for v in inputs[1].node().inputs()]
    lhs = equation.split("->")[0].split(",")
    if len(lhs) == 2 and "." not in equation:
        sizes: dict[str, int] = {}
        for letters, dims in zip(lhs, operands):
            sizes.update(zip(letters, dims))
        return Counter({"mac:einsum": math.prod(sizes.values())})
    return Counter({"mac:einsum": int(einsum_flop_jit(inputs, outputs))})


def _sdpa(inputs: list[Any], outputs: list[Any]) -> Counter:
    """``scaled_dot_product_attention(q, k, v, mask, dropout, is_causal, ...)``: Q·Kᵀ and A·V MACs + its softmax.

    MACs are the full (strict) count, B·H·T_q·T_k·(E + E_v), as in torch's FlopCounterMode: a causal mask
    saves no multiply in a dense kernel. The softmax is counted as B·H·T_q rows of T_k elements (the
    convention of pi_transformer.md §7); ``valid:softmax`` additionally counts the entries a causal mask
    leaves (T(T+1)/2 per head when T_q = T_k), which is only visible when the mask is ``is_causal=True``.
    """
    q, k, v = shape(inputs[0]), shape(inputs[1]), shape(inputs[2])
    rows = math.prod(q[:-1])
    t_q, t_k = q[-2], k[-2]
    elements = rows * t_k
    causal = len(inputs) > 5 and bool(_const(inputs[5]))
    if causal:  # torch's is_causal mask is tril(ones(T_q, T_k)) aligned top-left
        valid = rows // t_q * sum(min(i + 1, t_k) for i in range(t_q))
    else:
        valid = elements
    return Counter({"mac:scaled_dot_product_attention": rows * t_k * (q[-1] + v[-1]),
                    "nl:softmax": elements, "rows:softmax": rows, "valid:softmax": valid})


# -- thop's extra ops (paper convention) and norms ----------------------------------------------------

def _norm(name: str, affine_index: int, rows: Callable[[list[Any], list[int]], int] | None) -> Handle:
    """Normalisation: thop counts 2·numel, doubled when affine; the census counts every element."""
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        x = shape(inputs[0])
        n = math.prod(x)
        affine = inputs[affine_index].isCompleteTensor()
        counts = Counter({f"thop:{name}": 2 * n * (2 if affine else 1), f"nl:{name}": n})
        if rows is not None:
            counts[f"rows:{name}"] = rows(inputs, x)
        return counts
    return handle


def _rows_over_normalized_shape(inputs: list[Any], x: list[int]) -> int:
    normalized = _int_list(inputs[1])
    return math.prod(x) // math.prod(normalized)


def _groups(inputs: list[Any], x: list[int]) -> int:
    return x[0] * int(_const(inputs[1]))


_UPSAMPLE_FACTOR = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}


def _upsample(name: str, mode: str) -> Handle:
    """Upsampling: thop counts output elements times a per-mode factor (nearest 1, bilinear 11, ...)."""
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({f"thop:{name}": numel(outputs[0]) * _UPSAMPLE_FACTOR[mode]})
    return handle


def _avg_pool(name: str) -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({f"thop:{name}": numel(outputs[0])})
    return handle


def _adaptive_avg_pool(name: str) -> Handle:
    """thop: (prod(in_size / out_size) + 1) x output elements, truncated to an int like thop does."""
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        x, y = shape(inputs[0]), shape(outputs[0])
        n_spatial = len(_int_list(inputs[1]))
        kernel = math.prod(a / b for a, b in zip(x[-n_spatial:], y[-n_spatial:]))
        return Counter({f"thop:{name}": int((kernel + 1) * math.prod(y))})
    return handle


# -- nonlinearity census ------------------------------------------------------------------------------

def _elementwise(kind: str) -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        return Counter({f"nl:{kind}": numel(outputs[0])})
    return handle


def _softmax(kind: str) -> Handle:
    """Softmax over ``dim``: numel/size(dim) rows of size(dim) elements (pi_transformer.md §7: T×T per head)."""
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        x = shape(inputs[0])
        n = math.prod(x)
        dim = int(_const(inputs[1])) % len(x) if x else 0
        rows = n // x[dim] if x else 1
        counts = Counter({f"nl:{kind}": n, f"rows:{kind}": rows})
        if kind == "softmax":  # a mask passed as a tensor is data: every entry counts as valid
            counts["valid:softmax"] = n
        return counts
    return handle


def _max_pool(n_spatial: int) -> Handle:
    """Max-pool with a fixed window: kernel_area - 1 comparisons per output element (padding included)."""
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        kernel = _int_list(inputs[1])
        if len(kernel) == 1:  # MaxPool2d(5) passes kernel_size=5 for every spatial dim
            kernel = kernel * n_spatial
        return Counter({"nl:max_pool": numel(outputs[0]) * (math.prod(kernel) - 1)})
    return handle


def _adaptive_max_pool(inputs: list[Any], outputs: list[Any]) -> Counter:
    """Adaptive max-pool: window i spans [floor(i·In/Out), ceil((i+1)·In/Out)); size - 1 comparisons each.

    Summed over all windows: prod_d(sum of window sizes along d) - number of windows.
    """
    x, y = shape(inputs[0]), shape(outputs[0])
    n_spatial = len(_int_list(inputs[1]))
    covered = 1
    for n_in, n_out in zip(x[-n_spatial:], y[-n_spatial:]):
        covered *= sum(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) for i in range(n_out))
    windows = math.prod(y[-n_spatial:])
    return Counter({"nl:max_pool": math.prod(y[:-n_spatial]) * (covered - windows)})


# -- tables -------------------------------------------------------------------------------------------

def _with_inplace(table: dict[str, Handle]) -> dict[str, Handle]:
    """Also register ``aten::op_`` (in-place, e.g. SiLU(inplace=True) traces as aten::silu_)."""
    out = dict(table)
    for name, handle in table.items():
        out.setdefault(name + "_", handle)
    return out


# Census kind for each elementwise nonlinearity. "relu" is the comparison-based, piecewise-linear family.
_ELEMENTWISE_KINDS = {
    "silu": "silu", "gelu": "gelu", "relu": "relu", "relu6": "relu", "hardtanh": "relu", "leaky_relu": "relu",
    "rrelu": "relu", "prelu": "relu", "threshold": "relu", "sigmoid": "sigmoid", "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid", "tanh": "tanh", "elu": "elu", "selu": "elu", "celu": "elu", "mish": "mish",
    "softplus": "softplus", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "erf": "erf",
    "reciprocal": "reciprocal",
}

_OUR_OPS: dict[str, Handle] = _with_inplace({
    **{f"aten::{op}": _elementwise(kind) for op, kind in _ELEMENTWISE_KINDS.items()},
    "aten::_convolution": _conv,
    "aten::linear": _contraction("linear", 0, -1),
    "aten::addmm": _contraction("addmm", 1, -1),
    "aten::mm": _contraction("mm", 0, -1),
    "aten::matmul": _contraction("matmul", 0, -1),
    "aten::bmm": _contraction("bmm", 0, -1),
    "aten::baddbmm": _contraction("baddbmm", 1, -1),
    "aten::einsum": _einsum,
    "aten::scaled_dot_product_attention": _sdpa,
    "aten::batch_norm": _norm("batch_norm", 1, None),
    "aten::layer_norm": _norm("layer_norm", 2, _rows_over_normalized_shape),
    "aten::rms_norm": _norm("rms_norm", 2, _rows_over_normalized_shape),
    "aten::group_norm": _norm("group_norm", 2, _groups),
    "aten::instance_norm": _norm("instance_norm", 1, None),
    **{f"aten::upsample_{mode}{d}": _upsample(f"upsample_{mode}{d}", mode)
       for mode, d in [("nearest", "1d"), ("nearest", "2d"), ("nearest", "3d"), ("linear", "1d"),
                       ("bilinear", "2d"), ("bicubic", "2d"), ("trilinear", "3d")]},
    **{f"aten::avg_pool{d}": _avg_pool(f"avg_pool{d}") for d in ("1d", "2d", "3d")},
    **{f"aten::adaptive_avg_pool{d}": _adaptive_avg_pool(f"adaptive_avg_pool{d}") for d in ("1d", "2d", "3d")},
    "aten::softmax": _softmax("softmax"),
    "aten::_softmax": _softmax("softmax"),
    "aten::log_softmax": _softmax("log_softmax"),
    **{f"aten::max_pool{d}d": _max_pool(d) for d in (1, 2, 3)},
    **{f"aten::max_pool{d}d_with_indices": _max_pool(d) for d in (1, 2, 3)},
    **{f"aten::adaptive_max_pool{d}": _adaptive_max_pool for d in ("1d", "2d", "3d")},
})

# Zero cost under every convention, on purpose: elementwise arithmetic and residual additions (thop and the
# paper count them as free), reductions, comparisons, indexing and tensor creation. Listed so that they are
# neither counted nor reported as unsupported; anything missing from both tables is reported.
FREE_OPS: frozenset[str] = frozenset(f"aten::{op}" for op in (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "pow", "square",
    "sum", "mean", "cumsum", "prod", "amax", "amin", "argmax", "argmin", "min", "lt", "le", "ne",
    "logical_and", "logical_or", "logical_not", "where", "masked_fill_", "tril", "triu", "embedding",
    "repeat", "repeat_interleave", "expand_as", "view_as", "reshape_as", "clone", "flip", "fill_", "zero_",
    "ones_like", "empty_like", "rand_like", "randn_like", "meshgrid", "linspace", "unflatten", "movedim",
    "pad", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "clamp_min", "clamp_max", "lift_fresh",
    "scalar_tensor", "tensor", "alias", "numpy_T", "mT", "topk", "sort", "dropout_", "feature_dropout",
    "chunk", "tensor_split", "split", "index_select", "scatter", "scatter_add", "masked_select",
))


def _fvcore_part(op: str) -> Handle | None:
    """fvcore's own handle for ``op`` re-keyed under ``fv:``, or a ``fvskip`` marker, or None (ignored)."""
    fv = _FVCORE_OPS.get(op)
    short = op.split("::", 1)[-1]
    if fv is not None:
        def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
            try:
                value = fv(inputs, outputs)
            except (AssertionError, TypeError, ValueError, IndexError, NotImplementedError):
                return Counter({f"fvskip:{op}": 1})  # fvcore itself would crash on this node
            if isinstance(value, Number):
                return Counter({f"fv:{short}": value})
            return Counter({f"fv:{k}": v for k, v in value.items()})
        return handle
    if op in _FVCORE_IGNORED:
        return None
    return lambda inputs, outputs: Counter({f"fvskip:{op}": 1})


def _combine(ours: Handle | None, theirs: Handle | None) -> Handle:
    if theirs is None:
        assert ours is not None
        return ours
    if ours is None:
        return theirs

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        counts = ours(inputs, outputs)
        counts.update(theirs(inputs, outputs))
        return counts
    return handle


def op_handles() -> dict[str, Handle | None]:
    """The full handle table for ``JitModelAnalysis.set_op_handle``: our quantities plus fvcore's numbers.

    ``None`` marks an op that is free for us and ignored by fvcore too (the walk skips the node). A free op
    that fvcore does not ignore (``aten::add``) gets no handle: the walk tallies it as unsupported, cheaply
    (no handle call), and ``zoo.flops`` drops ``FREE_OPS`` from that tally except under ``fvcore``, which
    reports what fvcore itself would.
    """
    table: dict[str, Handle | None] = {op: None for op in FREE_OPS if op in _FVCORE_IGNORED}
    for op in sorted(set(_OUR_OPS) | set(_FVCORE_OPS)):
        ours, theirs = _OUR_OPS.get(op), _fvcore_part(op)
        table[op] = None if ours is None and theirs is None else _combine(ours, theirs)
    return table

"""Text tables for ``FlopResult.table()`` and ``NonlinearResult.table()`` (markdown, like fvcore's
``flop_count_table``: one row per module down to a depth, children indented under their parent)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for annotations only; zoo.flops imports this module
    from zoo.flops.counter import FlopResult, NonlinearResult


def human(n: float) -> str:
    """1234567 -> '1.235M' (4 significant digits; K, M, G, T)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{unit}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def _depth(name: str) -> int:
    return 0 if name == "" else name.count(".") + 1


def _label(name: str) -> str:
    return " " * _depth(name) + (name or "(root)")


def _render(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cost_table(result: FlopResult, max_depth: int = 3) -> str:
    """Module, type, #params, count under the result's convention, share of the total."""
    rows = [[_label(m.name), m.type, human(m.params), human(m.flops), f"{100 * m.share:.1f}%"]
            for m in result.modules if _depth(m.name) <= max_depth]
    header = ["module", "type", "#params", f"#{result.unit} ({result.convention})", "share"]
    text = _render(header, [":--", ":--", "--:", "--:", "--:"], rows)
    if result.unsupported:
        text += "\nunsupported (not counted): " + ", ".join(f"{op} x{n}" for op, n in result.unsupported.items())
    return text


def census_table(result: NonlinearResult, max_depth: int = 3) -> str:
    """Module, type, then elements per nonlinearity kind and the module's total."""
    kinds = list(result.by_kind)
    rows = []
    for name, counts in result.by_module.items():
        if _depth(name) <= max_depth:
            rows.append([_label(name), result.module_types[name], *(human(counts.get(k, 0)) for k in kinds),
                         human(sum(counts.values()))])
    header = ["module", "type", *kinds, "total"]
    return _render(header, [":--", ":--", *(["--:"] * (len(kinds) + 1))], rows)

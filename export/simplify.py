"""Optional graph simplification with ``onnxslim`` (an optional extra: ``pip install onnxslim``).

Why optional: the tracer's graph is already constant-folded and correct; onnxslim removes the shape
arithmetic the tracer leaves behind and fuses small patterns (LeYOLO-Nano: 487 -> 290 nodes), which
speeds up session start and some runtimes, but it is pure-Python and slow (~5 s for Nano), and nothing
depends on it. When it is missing, the export goes on and the result carries a note saying so.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging

import onnx

logger = logging.getLogger(__name__)

MISSING_NOTE = "onnxslim is not installed: the graph was not simplified (pip install onnxslim)"


def onnxslim_available() -> bool:
    return importlib.util.find_spec("onnxslim") is not None


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Return ``(simplified model, None)``, or ``(model, note)`` when onnxslim is unavailable.

    Graph inputs and outputs (names, order) are kept; onnxslim's console output is captured into the
    debug log so that CLI results on stdout stay clean.
    """
    if not onnxslim_available():
        logger.info(MISSING_NOTE)
        return model, MISSING_NOTE
    import onnxslim

    before = len(model.graph.node)
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        slim = onnxslim.slim(model)
    if chatter.getvalue().strip():
        logger.debug("onnxslim: %s", chatter.getvalue().strip())
    if [o.name for o in slim.graph.output] != [o.name for o in model.graph.output]:  # pragma: no cover
        logger.warning("onnxslim changed the graph outputs; keeping the unsimplified graph")
        return model, "onnxslim changed the graph outputs: the graph was not simplified"
    logger.info("onnxslim: %d -> %d nodes", before, len(slim.graph.node))
    return slim, None

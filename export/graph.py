"""Small, dependency-free edits and queries on an in-memory ONNX graph.

Why: the targets need the same few graph facts (the opset, the decode "tail" that must stay in float,
outputs that exist only while the export is being checked), and ``onnx`` offers no helpers for them.
"""
from __future__ import annotations

from collections.abc import Iterable

import onnx


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name, so nodes can be listed for block/exclude lists."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_effzoo_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def descendants(model: onnx.ModelProto, tensors: Iterable[str]) -> list[str]:
    """Names of the nodes that consume ``tensors`` directly or through other nodes (graph order).

    A fixpoint over the node list: graph editors (e.g. the float16 converter) do not always keep the
    nodes topologically sorted.
    """
    name_nodes(model)
    reached = set(tensors)
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if node.name not in found and any(i in reached for i in node.input):
                found.add(node.name)
                reached.update(node.output)
                changed = True
    return [n.name for n in model.graph.node if n.name in found]


def nearest_producers(model: onnx.ModelProto, tensors: Iterable[str], op_type: str) -> list[str]:
    """Nodes on the paths into ``tensors`` up to and including the first ``op_type`` node on each path.

    Used to find the detector's last head convolutions (raw map <- Concat <- Conv): their outputs are
    logits that an int8 range calibrated on other images would clip (a clipped class logit of 0 reads
    as score 0.5), so the edge target keeps them in float.
    """
    name_nodes(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    found: list[str] = []
    stack = [t for t in tensors]
    seen: set[str] = set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        found.append(node.name)
        if node.op_type != op_type:
            stack.extend(i for i in node.input if i)
    return found


def drop_outputs(model: onnx.ModelProto, names: Iterable[str]) -> None:
    """Remove graph outputs by name (their producers stay if something else still uses them)."""
    names = set(names)
    keep = [o for o in model.graph.output if o.name not in names]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    prune_dead_nodes(model)


def prune_dead_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes (and initializers) that no graph output depends on (order-independent fixpoint)."""
    needed = {o.name for o in model.graph.output}
    live: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, node in enumerate(model.graph.node):
            if i not in live and any(o in needed for o in node.output):
                live.add(i)
                needed.update(x for x in node.input if x)
                for attr in node.attribute:  # subgraphs (If/Loop) read outer tensors by name
                    for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                        needed.update(x for n in g.node for x in n.input)
                changed = True
    nodes = [n for i, n in enumerate(model.graph.node) if i in live]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    inits = [t for t in model.graph.initializer if t.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


def inline_shared_initializers(model: onnx.ModelProto) -> int:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer; return how many.

    The TorchScript exporter stores equal weights once and feeds the other users through Identity
    nodes (untrained LeYOLO heads have many equal folded biases). Quantizers then see a bias that is not
    an initializer and leave it in float; a real initializer per use fixes that at a few KB.
    """
    inits = {t.name: t for t in model.graph.initializer}
    keep, copies = [], []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in inits:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(inits[node.input[0]])
            tensor.name = node.output[0]
            copies.append(tensor)
        else:
            keep.append(node)
    if copies:
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(copies)
    return len(copies)


def output_names(model: onnx.ModelProto) -> list[str]:
    return [o.name for o in model.graph.output]


def initializer_types(model: onnx.ModelProto) -> set[int]:
    """The ``TensorProto`` data types of all weights (e.g. {FLOAT16} for a gpu export)."""
    return {t.data_type for t in model.graph.initializer}


def has_op(model: onnx.ModelProto, op_type: str) -> bool:
    """True when some node of ``model`` is an ``op_type``."""
    return any(n.op_type == op_type for n in model.graph.node)

"""The layering that ARCHITECTURE.md promises, checked on the source with ``ast``.

Layers, lowest first: core -> models -> eval -> tasks -> orchestration -> cli. A module may import its
own layer and the ones below, never above; packages form no import cycle; a project import inside a
function body is allowed only to defer a slow or optional dependency, says why in a comment, and there
are at most ``MAX_DEFERRED`` of them. Each failure names the two modules involved.
"""
from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> import name (pyproject's package-dir mapping)
SOURCES = {"zoo": "zoo", "models": "zoo.models", "eval": "zoo.eval", "export": "zoo.export"}
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("zoo.core",)),
    ("models", ("zoo.models", "zoo.runtime")),
    ("eval", ("zoo.eval", "zoo.flops")),
    ("tasks", ("zoo.tasks",)),
    ("orchestration", ("zoo.engine", "zoo.export", "zoo.benchmark", "zoo.studies", "zoo.mpc")),
    ("cli", ("zoo.commands", "zoo.cli", "zoo.__main__", "zoo")),
)
MAX_DEFERRED = 20


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported project module
    line: int
    in_function: bool
    commented: bool  # a comment on the import line or the line above


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    parts[0] = SOURCES[parts[0]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (longest existing prefix), or None if not ours."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue  # annotations only: never executed
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` loads pkg.sub when it is a module
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            for name in names:
                target = _resolve(name)
                if target is None or target == module:
                    continue
                text = lines[child.lineno - 1]
                above = lines[child.lineno - 2].strip() if child.lineno > 1 else ""
                found.append(Import(module, target, child.lineno, in_function,
                                    "#" in text or above.startswith("#")))
            visit(child, in_function)

    visit(tree, False)
    return found


IMPORTS = sorted({imp for module, path in MODULES.items() for imp in _imports_of(module, path)},
                 key=lambda i: (i.source, i.line, i.target))


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer; add its package to LAYERS and ARCHITECTURE.md"
    return best


def package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_lower_layer_imports_a_higher_one():
    bad = [f"{i.source} ({LAYERS[layer_of(i.source)][0]}) imports {i.target} ({LAYERS[layer_of(i.target)][0]}) "
           f"at line {i.line}" for i in IMPORTS if layer_of(i.target) > layer_of(i.source)]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = itertools.count()

    def strong(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    witness: dict[tuple[str, str], Import] = {}
    for imp in IMPORTS:
        a, b = package_of(imp.source), package_of(imp.target)
        if a != b:
            edges.setdefault(a, set()).add(b)
            witness.setdefault((a, b), imp)
    cycles = _cycles(edges)
    lines = []
    for comp in cycles:
        for a, b in itertools.permutations(comp, 2):
            if (a, b) in witness:
                w = witness[(a, b)]
                lines.append(f"{w.source} imports {w.target} (line {w.line})")
    assert not cycles, f"package import cycles {cycles}:\n" + "\n".join(lines)


def test_no_import_cycle_between_modules():
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        edges.setdefault(imp.source, set()).add(imp.target)
    assert not _cycles(edges)


def test_deferred_project_imports_are_few_and_explained():
    deferred = [i for i in IMPORTS if i.in_function]
    silent = [f"{i.source}:{i.line} imports {i.target} inside a function without a comment saying why"
              for i in deferred if not i.commented]
    assert not silent, "\n".join(silent)
    assert len(deferred) <= MAX_DEFERRED, (
        f"{len(deferred)} project imports inside function bodies (at most {MAX_DEFERRED}):\n"
        + "\n".join(f"{i.source}:{i.line} -> {i.target}" for i in deferred))


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The walker itself must be able to fail: an upward import written in a string of source is found."""
    fake = ROOT / "zoo" / "core" / "errors.py"
    tree_imports = _imports_of("zoo.core.errors", fake)
    assert all(layer_of(i.target) == 0 for i in tree_imports)
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from zoo.engine.trainer import Trainer\n")
    imports = _imports_of("zoo.core.planted", planted)
    assert [(i.target, i.in_function, i.commented) for i in imports] == [("zoo.engine.trainer", True, False)]
    assert layer_of("zoo.engine.trainer") > layer_of("zoo.core.planted")


@pytest.mark.parametrize("module", ["zoo.core.registry"])
def test_registry_imports_nothing_of_ours_but_errors(module):
    targets = {i.target for i in IMPORTS if i.source == module}
    assert targets <= {"zoo.core.errors"}, targets

"""No module of ra_guard imports its caller: the package's module-level import graph has no cycle.

The graph is read from the source with ``ast``: every ``import``/``from ... import``
at module level, those under ``if TYPE_CHECKING:`` (and other module-level
``if``/``try`` blocks) included; imports inside functions are left out, since
they run late and on purpose (optional dependencies, lazy backends). An edge goes
to the module named, or to the module a ``from`` import takes a name from.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import ra_guard

PACKAGE = Path(ra_guard.__file__).resolve().parent


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (linked folders followed, as Python does)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        where = Path(folder)
        if where != root and not (where / "__init__.py").exists():
            dirs[:] = []  # not a package: nothing under it imports as ra_guard.*
            continue
        prefix = ["ra_guard", *where.relative_to(root).parts]
        for file in files:
            if file.endswith(".py"):
                stem = file[:-3]
                found[".".join(prefix if stem == "__init__" else [*prefix, stem])] = where / file
    return found


def _module_level(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements run when the module loads: top level, and inside module-level if/try blocks."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level."""
    known = modules()

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in _module_level(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the importing module's package upwards
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else owner(base))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_type_checking_imports_and_skips_function_imports() -> None:
    graph = import_graph()
    assert "ra_guard.engine" in graph["ra_guard.strategies"]  # under `if TYPE_CHECKING:`
    assert "ra_guard.audit" in graph["ra_guard.guard"]  # under `if TYPE_CHECKING:`
    assert "ra_guard.guard" in graph["ra_guard"]
    # tracing imports ``ra_guard`` (for __version__) inside a method only: no edge back to the package.
    assert "ra_guard" not in graph["ra_guard.tracing"]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_engine_imports_neither_the_guard_nor_the_strategies() -> None:
    graph = import_graph()
    assert not {"ra_guard.guard", "ra_guard.strategies"} & graph["ra_guard.engine"]
    assert "ra_guard.guard" not in graph["ra_guard.strategies"]
    assert {"ra_guard.engine", "ra_guard.strategies"} <= graph["ra_guard.guard"]


def test_no_import_cycle_in_the_package() -> None:
    assert cycles(import_graph()) == []

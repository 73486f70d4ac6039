"""The modules of `lenscope.model` import each other one way only: no cycle, counting imports
inside functions and those made only for type checking (`ActivationCache` and the stacks read a
model through `stacks.StackModel`, so cache, stacks and transformer form a chain)."""

from __future__ import annotations

import ast
from pathlib import Path

import lenscope.model

PKG = Path(lenscope.model.__file__).parent


def module_name(path: Path) -> str:
    return "lenscope.model" + ("" if path.stem == "__init__" else f".{path.stem}")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module of the package that `path` imports, wherever the import statement stands."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif node.module in known:
                    out.add(node.module)
    return out


def graph() -> dict[str, set[str]]:
    paths = sorted(PKG.glob("*.py"))
    known = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, known) - {module_name(p)} for p in paths}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return [*path[path.index(w) :], w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_model_modules_have_no_import_cycle() -> None:
    edges = graph()
    edges.pop("lenscope.model")  # the package's __init__ re-exports its modules
    for deps in edges.values():
        deps.discard("lenscope.model")
    assert {"lenscope.model.cache", "lenscope.model.stacks"} <= edges[
        "lenscope.model.transformer"
    ] | edges["lenscope.model.cache"]
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

"""No import cycles among the modules of src/lenscope, nor among web/src's TypeScript modules.

Every import counts, at module level or inside a function; imports under `if TYPE_CHECKING:`
(Python) and `import type` (TypeScript) do not, as neither runs. `from pkg import name` is an
edge to `pkg.name` when that is a module, else to `pkg`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
Graph = dict[str, set[str]]


# ---- Python ---------------------------------------------------------------------------------------
def python_modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `src` (a package is its __init__)."""
    mods: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    nodes: list[ast.stmt], into_functions: bool = True
) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: nested in functions, classes, try, with, loops
    (without `into_functions`, only those that run on import: not inside function bodies)."""
    stack: list[ast.AST] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        elif into_functions or not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            stack.extend(ast.iter_child_nodes(node))


def _module_level_imports(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    return _imports(nodes, into_functions=False)


def _targets(
    module: str, is_pkg: bool, node: ast.Import | ast.ImportFrom, mods: set[str]
) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in mods}
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        pkg = ".".join(base + ([node.module] if node.module else []))
    else:
        pkg = node.module or ""
    out = set()
    for alias in node.names:
        sub = f"{pkg}.{alias.name}"
        out.add(sub if sub in mods else pkg)
    return out & mods


def python_graph(src: Path, module_level: bool = False) -> Graph:
    """Module -> the modules it imports (with `module_level`, only those imported on import)."""
    mods = python_modules(src)
    names = set(mods)
    graph: Graph = {}
    walk = _module_level_imports if module_level else _imports
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in walk(tree.body):
            deps |= _targets(module, is_pkg, node, names)
        deps.discard(module)
        graph[module] = deps
    return graph


# ---- TypeScript -----------------------------------------------------------------------------------
_TS_FROM = re.compile(
    r"^\s*(?:import|export)\s+(type\s+)?[^;'\"]*?\bfrom\s*[\"']([^\"']+)[\"']", re.MULTILINE
)
_TS_BARE = re.compile(r"^\s*import\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_TS_DYNAMIC = re.compile(r"\bimport\(\s*[\"']([^\"']+)[\"']\s*\)")
_TS_EXTS = (".ts", ".tsx", "/index.ts", "/index.tsx")


def ts_specifiers(text: str) -> set[str]:
    """The module specifiers a TS/TSX file imports at run time (`import type` is erased)."""
    specs = {m.group(2) for m in _TS_FROM.finditer(text) if not m.group(1)}
    specs |= {m.group(1) for m in _TS_BARE.finditer(text)}
    specs |= {m.group(1) for m in _TS_DYNAMIC.finditer(text)}
    return specs


def ts_graph(src: Path) -> Graph:
    files = sorted(p for p in src.rglob("*") if p.suffix in (".ts", ".tsx"))
    known = {p.resolve() for p in files}
    graph: Graph = {}
    for path in files:
        deps: set[str] = set()
        for spec in ts_specifiers(path.read_text(encoding="utf-8")):
            if not spec.startswith("."):
                continue  # a package, not one of ours
            base = str((path.parent / spec).resolve())
            for cand in [Path(base)] + [Path(base + ext) for ext in _TS_EXTS]:
                if cand in known:
                    deps.add(str(cand.relative_to(src.resolve())))
                    break
        graph[str(path.relative_to(src))] = deps
    return graph


# ---- cycles ---------------------------------------------------------------------------------------
def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph.get(root, ())))))
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp: list[str] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return sorted(found)


def _message(found: list[list[str]]) -> str:
    return "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


# ---- the checks themselves, on small made-up packages ---------------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycles_finds_strongly_connected_components() -> None:
    graph: Graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_python_graph_counts_function_level_imports_but_not_type_checking(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def f():\n    from . import a\n    return a\nthing = 1\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.d\n",
            "pkg/d.py": "from .c import x\n",
            "pkg/sub/__init__.py": "from ..e import y\n",
            "pkg/e.py": "try:\n    import pkg.sub\nexcept ImportError:\n    pass\n",
        },
    )
    graph = python_graph(tmp_path)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == set()
    assert graph["pkg.d"] == {"pkg.c"}
    assert graph["pkg.sub"] == {"pkg.e"}
    assert cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.e", "pkg.sub"]]


def test_ts_graph_resolves_relative_imports_and_skips_type_only(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "App.tsx": 'import { useState } from "react";\nimport { Page } from "./pages/Page";\n',
            "pages/Page.tsx": 'import {\n  useInfo,\n  other,\n} from "../App";\n',
            "lib/types.ts": 'import type { Page } from "../pages/Page";\nexport type T = 1;\n',
            "pages/index.ts": 'export { Page } from "./Page";\nimport "../lib/types";\n',
            "lib/x.ts": 'import type { A } from "./y";\n',
            "lib/y.ts": 'import { B } from "./x";\n',
        },
    )
    graph = ts_graph(tmp_path)
    assert graph["App.tsx"] == {"pages/Page.tsx"}
    assert graph["lib/types.ts"] == set()
    assert graph["pages/index.ts"] == {"pages/Page.tsx", "lib/types.ts"}
    assert cycles(graph) == [["App.tsx", "pages/Page.tsx"]]


# ---- the project --------------------------------------------------------------------------------
def test_the_graph_sees_the_package() -> None:
    graph = python_graph(ROOT / "src")
    assert "lenscope.model.transformer" in graph["lenscope.lens.core"]
    assert len(graph) > 100


def test_no_import_cycles_in_src_lenscope() -> None:
    found = cycles(python_graph(ROOT / "src"))
    assert not found, _message(found)


def test_instruments_import_notebook_renderers_only_inside_functions() -> None:
    """`lenscope.viz` (notebook HTML/SVG) is a face: results reach it lazily, from `_repr_html_`."""
    graph = python_graph(ROOT / "src", module_level=True)
    faces = ("lenscope.viz", "lenscope.cli", "lenscope.server")
    assert "lenscope.viz.heatmap" in graph["lenscope.viz.lens_heatmaps"]
    bad = {
        m: sorted(d for d in deps if d.startswith("lenscope.viz"))
        for m, deps in graph.items()
        if not m.startswith(faces)
    }
    bad = {m: d for m, d in bad.items() if d}
    assert not bad, f"modules importing lenscope.viz at module level: {bad}"
    lazily = python_graph(ROOT / "src")
    assert "lenscope.viz.why_html" in lazily["lenscope.attribution.results"]


def test_module_level_walk_skips_functions(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\ndef f():\n    import pkg.c\nclass K:\n    import pkg.d\n"
            "    def m(self):\n        import pkg.e\n",
            "pkg/b.py": "",
            "pkg/c.py": "",
            "pkg/d.py": "",
            "pkg/e.py": "",
        },
    )
    assert python_graph(tmp_path, module_level=True)["pkg.a"] == {"pkg.b", "pkg.d"}
    assert python_graph(tmp_path)["pkg.a"] == {"pkg.b", "pkg.c", "pkg.d", "pkg.e"}


def test_no_import_cycles_in_web_src() -> None:
    graph = ts_graph(ROOT / "web" / "src")
    assert "pages/DebuggerPage.tsx" in graph["App.tsx"]
    found = cycles(graph)
    assert not found, _message(found)

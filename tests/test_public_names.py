"""One name per concept: no two public classes in src/lenscope share a name."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lenscope"


def public_classes(root: Path) -> dict[str, list[str]]:
    """Each public (not underscore-prefixed) module-level class name -> the modules defining it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[node.name].append(str(path.relative_to(root.parent)))
    return found


def duplicates(root: Path) -> dict[str, list[str]]:
    return {name: where for name, where in public_classes(root).items() if len(where) > 1}


def test_the_walk_finds_a_duplicate(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("class Result:\n    pass\n\nclass _Private:\n    pass\n")
    (pkg / "sub" / "b.py").write_text("class Result:\n    pass\n\nclass _Private:\n    pass\n")
    (pkg / "sub" / "c.py").write_text("class Other:\n    pass\n")
    assert duplicates(pkg) == {"Result": ["pkg/a.py", "pkg/sub/b.py"]}


def test_the_walk_sees_the_package() -> None:
    classes = public_classes(SRC)
    assert classes["HookedTransformer"] == ["lenscope/model/transformer.py"]
    assert len(classes) > 100


def test_no_two_public_classes_share_a_name() -> None:
    dup = duplicates(SRC)
    assert not dup, "public classes sharing a name: " + "; ".join(
        f"{name} in {', '.join(where)}" for name, where in sorted(dup.items())
    )

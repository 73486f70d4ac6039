"""Code labels against independent computations: ast's own spans, a bracket count by brute
force, the tokenizer's offsets."""

from __future__ import annotations

import ast
import inspect
import shlex

import numpy as np

from lenscope.data.code_labels import KIND, label_text, token_labels
from tests.bench.helpers import tokenizer

SRC = '''import os  # a comment (with brackets)
X = {"a": [1, 2.5], 'b': (3,)}


@staticmethod
def f(a, b=(1, 2), *c, **d):
    """Doc [string]."""
    if a:
        return [x for x in (a, b)]
    return None


y = f(1)
'''


def test_kinds_and_flags_on_a_hand_checked_snippet() -> None:
    lab = label_text(SRC)

    def at(s: str, nth: int = 0) -> int:
        i = -1
        for _ in range(nth + 1):
            i = SRC.index(s, i + 1)
        return i

    assert lab.kind[at("import")] == KIND["keyword"] and lab.kind[at("os")] == KIND["name"]
    assert lab.in_comment[at("(with")] == 1 and lab.kind[at("(with")] == KIND["comment"]
    assert lab.kind[at("2.5")] == KIND["number"] and lab.kind[at('"a"')] == KIND["string"]
    assert lab.kind[at("{")] == KIND["operator"] and lab.bracket_depth[at("{")] == 0
    assert lab.bracket_depth[at("2.5")] == 2 and lab.bracket_depth[at("3,)")] == 2
    assert lab.in_string[at("[string]")] == 1 and lab.bracket_depth[at("[string]")] == 0
    assert lab.def_args[at("b=(1")] == 1 and lab.def_args[at("**d")] == 1
    assert lab.def_args[at("(a, b=")] == 0 and lab.def_args[at("a:")] == 0
    assert lab.indent[at("if a")] == 1 and lab.indent[at("return [x")] == 2
    assert lab.indent[at("y = f")] == 0 and lab.def_args[at("f(1)") + 2] == 0


def test_in_def_and_in_string_agree_with_ast_spans() -> None:
    text = inspect.getsource(shlex)
    lab = label_text(text)
    lines = text.split("\n")
    starts = np.cumsum([0] + [len(s) + 1 for s in lines])
    want = np.zeros(len(text), dtype=bool)

    def _char(line: int, byte_col: int) -> int:  # ast counts UTF-8 bytes within a line
        return int(starts[line - 1]) + len(lines[line - 1].encode()[:byte_col].decode())

    strings = np.zeros(len(text), dtype=bool)
    for node in ast.walk(ast.parse(text)):
        if not hasattr(node, "end_lineno"):
            continue
        a = _char(node.lineno, node.col_offset)
        b = _char(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        if isinstance(node, ast.FunctionDef):
            if node.decorator_list:
                d = node.decorator_list[0]
                a = _char(d.lineno, d.col_offset)
            want[a:b] = True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings[a:b] = True
    assert np.array_equal(lab.in_def == 1, want)
    visible = strings & ~np.array([c.isspace() for c in text]) & (lab.in_comment == 0)
    assert bool((lab.in_string[visible] == 1).all())  # literals (implicitly joined ones too)


def test_bracket_depth_is_a_count_of_brackets_outside_strings_and_comments() -> None:
    text = inspect.getsource(shlex)
    lab = label_text(text)
    depth = 0
    for i, c in enumerate(text):
        code = lab.in_string[i] == 0 and lab.in_comment[i] == 0
        if code and c in ")]}":
            depth -= 1
        if lab.kind[i] >= 0 and not text[i].isspace():
            assert lab.bracket_depth[i] == depth, (i, text[i - 20 : i + 5])
        if code and c in "([{":
            depth += 1
    assert depth == 0


def test_tokens_take_the_labels_of_their_first_visible_character() -> None:
    tok = tokenizer()
    text = "def f(x):\n    return 'hi'  # done\n"
    enc = tok.hf.encode(text, add_special_tokens=False)
    labs = token_labels(text, [tuple(o) for o in enc.offsets])
    for i, (a, b) in enumerate(enc.offsets):
        piece = text[a:b]
        if piece.strip() == "":
            assert labs["kind"][i] == KIND["none"]
        elif piece.strip().startswith("return"):
            assert labs["kind"][i] == KIND["keyword"] and labs["in_def"][i] == 1
        elif "'" in piece:
            assert labs["in_string"][i] == 1
        elif "done" in piece:
            assert labs["in_comment"][i] == 1


def test_a_fragment_that_starts_inside_a_string_still_labels_the_code_after_it() -> None:
    frag = 'of a docstring.\n    """\n    x = foo(1)\n'
    lab = label_text(frag, fragment=True)
    i = frag.index("foo")
    assert lab.kind[i] == KIND["name"] and lab.bracket_depth[frag.index("1)")] == 1
    assert (lab.in_def == -1).all()  # a fragment does not parse: no function spans

"""Code labels made offline from Python source with `tokenize` and `ast`, per character, and
carried to a model's tokens by character offsets.

Per character of a source text:

    kind           what Python token it belongs to: keyword, name, string, number, comment,
                   operator (brackets included), or none (whitespace, newlines, anything else)
    in_string      inside a string literal (quotes and f-string text included)
    in_comment     inside a `#` comment
    bracket_depth  open brackets ( [ { around it; a bracket itself counts at the outer depth
    indent         the indentation level (depth of tokenize's INDENT/DEDENT stack)
    def_args       inside the parentheses of a `def`'s argument list
    in_def         inside a function definition (`def` through its body's end, from `ast`; only
                   for texts that parse as a whole: -1 elsewhere)

A model token [start, end) takes the labels of its first character that is not whitespace (of
its first character when it is all whitespace, then its kind is none). `label_text` also takes
fragments (a record's context window): where tokenize stops (a fragment that starts inside a
string, an indentation it cannot follow) it restarts on the next line, and the characters it could
not read stay unlabelled (kind -1).
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

KINDS = ("none", "keyword", "name", "string", "number", "comment", "operator")
KIND = {k: i for i, k in enumerate(KINDS)}
UNREAD = -1
_OPEN, _CLOSE = "([{", ")]}"

IntArray = npt.NDArray[np.int16]


@dataclass
class CharLabels:
    """Per-character label arrays of one text (see the module docstring); kind -1: unread."""

    kind: IntArray
    in_string: IntArray
    in_comment: IntArray
    bracket_depth: IntArray
    indent: IntArray
    def_args: IntArray
    in_def: IntArray

    def at(self, idx: npt.NDArray[np.int64]) -> dict[str, IntArray]:
        return {name: getattr(self, name)[idx] for name in LABELS}


LABELS = ("kind", "in_string", "in_comment", "bracket_depth", "indent", "def_args", "in_def")


def _line_starts(text: str) -> list[int]:
    """Character offset of each line as tokenize numbers them (split on \\n only), 1-based."""
    starts = [0, 0]
    starts += [i + 1 for i, c in enumerate(text) if c == "\n"]
    return starts


def label_text(text: str, *, fragment: bool = False) -> CharLabels:
    """Per-character code labels of `text` (a whole file; `fragment`: a piece of one)."""
    n = len(text)
    z = np.zeros(n, dtype=np.int16)
    lab = CharLabels(
        np.full(n, UNREAD, np.int16), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z - 1
    )
    starts = _line_starts(text)
    lines = text.split("\n")
    first = 1
    while first <= len(lines):
        src = "\n".join(lines[first - 1 :])
        stopped = _tokenize_into(lab, src, starts, first - 1, n)
        if stopped is None or not fragment:
            break
        first = max(stopped + 1, first + 1)
    if not fragment:
        _mark_defs(lab, text, starts)
    return lab


def _tokenize_into(lab: CharLabels, src: str, starts: list[int], shift: int, n: int) -> int | None:
    """Label the characters of `src` (lines `shift`+1.. of the text); the absolute line where
    tokenize stopped on an error, else None."""
    depth = indent = 0
    state = "none"  # def_args state machine: none -> def -> name -> args (depth at open)
    args_depth = -1
    row = shift + 1

    def span(tok: tokenize.TokenInfo) -> tuple[int, int]:
        (r0, c0), (r1, c1) = tok.start, tok.end
        a = starts[min(r0 + shift, len(starts) - 1)] + c0
        b = starts[min(r1 + shift, len(starts) - 1)] + c1
        return min(a, n), min(b, n)

    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            row = tok.start[0] + shift
            if tok.type == tokenize.INDENT:
                indent += 1
                continue
            if tok.type == tokenize.DEDENT:
                indent = max(0, indent - 1)
                continue
            a, b = span(tok)
            if b <= a:
                continue
            kind = _kind(tok)
            if tok.type == tokenize.OP and tok.string in _CLOSE:
                depth = max(0, depth - 1)
            sl = slice(a, b)
            lab.kind[sl] = KIND[kind]
            lab.bracket_depth[sl] = depth
            lab.indent[sl] = indent
            lab.in_string[sl] = kind == "string"
            lab.in_comment[sl] = kind == "comment"
            if state == "args" and depth > args_depth:
                lab.def_args[sl] = 1
            if tok.type == tokenize.OP and tok.string in _OPEN:
                if state == "name" and tok.string == "(":
                    state, args_depth = "args", depth
                depth += 1
            elif tok.string in _CLOSE and state == "args" and depth == args_depth:
                state = "none"
            state = _def_state(state, tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return row
    return None


def _def_state(state: str, tok: tokenize.TokenInfo) -> str:
    if state == "args":
        return state
    if tok.type == tokenize.NAME and tok.string == "def":
        return "def"
    if state == "def" and tok.type == tokenize.NAME:
        return "name"
    return "none" if state in ("def", "name") else state


def _kind(tok: tokenize.TokenInfo) -> str:
    if tok.type == tokenize.NAME:
        return "keyword" if keyword.iskeyword(tok.string) else "name"
    if tok.type == tokenize.STRING:
        return "string"
    if tok.type == tokenize.NUMBER:
        return "number"
    if tok.type == tokenize.COMMENT:
        return "comment"
    if tok.type == tokenize.OP:
        return "operator"
    return "none"


def _mark_defs(lab: CharLabels, text: str, starts: list[int]) -> None:
    """in_def from `ast`: 1 inside any (async) function definition, 0 elsewhere; -1 stays where
    the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    lab.in_def[:] = 0
    n = len(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            col = node.decorator_list[0].col_offset if node.decorator_list else node.col_offset
            a = _char(text, starts, first, col)
            b = _char(text, starts, node.end_lineno, node.end_col_offset or 0)
            lab.in_def[min(a, n) : min(b, n)] = 1


def _char(text: str, starts: list[int], line: int, byte_col: int) -> int:
    """`ast` columns count UTF-8 bytes; the character offset of (line, byte column)."""
    if line >= len(starts):
        return len(text)
    s = starts[line]
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return s + len(text[s:end].encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def token_positions(text: str, offsets: list[tuple[int, int]]) -> npt.NDArray[np.int64]:
    """For each token span [start, end) of `text`: its first non-whitespace character (its first
    character when it is all whitespace; -1 for an empty span)."""
    out = np.full(len(offsets), -1, np.int64)
    for i, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        j = a
        while j < b and text[j].isspace():
            j += 1
        out[i] = j if j < b else a
    return out


def token_labels(
    text: str, offsets: list[tuple[int, int]], *, fragment: bool = False
) -> dict[str, IntArray]:
    """Per token span of `text`: each label (see the module); unlabelled tokens get kind -1."""
    lab = label_text(text, fragment=fragment)
    pos = token_positions(text, offsets)
    ok = pos >= 0
    out = lab.at(np.where(ok, pos, 0))
    for v in out.values():
        v[~ok] = UNREAD
    whitespace = np.array(
        [bool(ok[i]) and text[pos[i]].isspace() for i in range(len(offsets))], dtype=bool
    )
    out["kind"][whitespace] = KIND["none"]
    return out


def fragment_offsets(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of consecutive token strings and each token's [start, end) in it."""
    offsets, pos = [], 0
    for p in pieces:
        offsets.append((pos, pos + len(p)))
        pos += len(p)
    return "".join(pieces), offsets

"""Whether a string is text a tokenizer can read: the one check for text entering lenscope.

A Python `str` may hold what no UTF-8 text can: a lone surrogate (U+D800..U+DFFF). JSON lets a
client send one (`"\\ud800"`), and Python turns the bytes of a command-line argument that are not
UTF-8 into "surrogate escapes" (U+DC80..U+DCFF, PEP 383). Tokenizers refuse such strings with an
internal error, so every face checks its input here, where it enters: the server's request
bodies (`lenscope.server.schemas`) and the command line's arguments (`lenscope.cli.main`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lenscope.errors import InputError


def text_problem(s: str) -> str | None:
    """Why `s` is not valid Unicode text (the first lone surrogate and where it is), else None."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"is not valid Unicode text: it holds a lone surrogate (U+{ord(s[e.start]):04X}) "
            f"at character {e.start}"
        )
    return None


def check_text(s: str, what: str = "the text") -> str:
    """`s` itself when it is valid text; else an `InputError` naming `what`."""
    problem = text_problem(s)
    if problem is not None:
        raise InputError(f"{what} {problem}")
    return s


def find_invalid_text(obj: Any) -> tuple[str, str] | None:
    """(where, problem) of the first string in a JSON-like value (dicts, lists, strings; keys
    too) that is not valid text, or None. `where` reads like `question.target[0]`. Iterative, so
    that no nesting depth overflows the stack."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return path or "the value", problem
        elif isinstance(value, Mapping):
            items = []
            for k, v in value.items():
                key = str(k)
                if (problem := text_problem(key)) is not None:
                    return (f"a key in {path}" if path else "a key"), problem
                items.append((f"{path}.{key}" if path else key, v))
            stack.extend(reversed(items))
        elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return None


def check_arguments(argv: Sequence[str]) -> None:
    """Refuse a command-line argument that is not UTF-8 text (the shell passed bytes that Python
    could not decode) with an `InputError` that shows its bytes."""
    for i, arg in enumerate(argv, 1):
        if text_problem(arg) is None:
            continue
        try:  # undecodable bytes arrive as surrogate escapes: show the bytes the shell sent
            raw = arg.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "backslashreplace")
        raise InputError(
            f"argument {i} ({raw!r}) is not UTF-8 text; give prompts and tokens as UTF-8"
        )

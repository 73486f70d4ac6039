"""One sentence for a request that does not match the schema.

Pydantic names where a problem is with its own bookkeeping mixed in: the request part (`body`), the
member of a union it tried (`constrained-str`, `list[constrained-int]`, `function-after[...]`, a
discriminated union's tag such as `steer`), and it reports one problem per union member. The
sentence names the field as a client wrote it (`question.target[0]`), keeps the problems that
matter (a too-long string, not "should be a list" as well) and shows at most three.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MAX_PROBLEMS = 3
_PARTS = ("body", "query", "path", "header", "cookie")
# how pydantic-core names a schema (not a field): type reprs and validator wrappers
_SCHEMA_TAG = re.compile(r"[\[\]\-]|^(str|int|float|bool|list|dict|none|bytes|tuple|set)$")
_UNKNOWN = object()


def field_path(loc: Sequence[Any], body: Any = _UNKNOWN, missing: bool = False) -> str:
    """`question.target[0]` from `('body', 'question', 'logit_diff', 'target', 0, 'str')`.

    With the request body at hand, a name is a field exactly when the input has that key (or it is
    the missing field); anything else is a union member's tag. Without it, type-like names go."""
    parts = list(loc)
    cur: Any = _UNKNOWN
    if parts and parts[0] in _PARTS:
        cur = body if parts.pop(0) == "body" and body is not None else _UNKNOWN
    out = ""
    for i, p in enumerate(parts):
        if isinstance(p, int):
            out += f"[{p}]"
            ok = isinstance(cur, list) and 0 <= p < len(cur)
            cur = cur[p] if ok else _UNKNOWN
            continue
        name = str(p)
        if cur is _UNKNOWN:
            if _SCHEMA_TAG.search(name):
                continue
        elif isinstance(cur, dict) and name in cur:
            cur = cur[name]
        elif not (missing and i == len(parts) - 1 and isinstance(cur, dict)):
            continue  # a union member's tag: the input is still the same value
        out += f".{name}" if out else name
    return out


def problem(err: dict[str, Any]) -> str:
    """The human part of one pydantic error."""
    kind, ctx = err.get("type"), err.get("ctx") or {}
    if kind == "missing":
        return "this field is required"
    if kind == "union_tag_invalid":
        return f"{ctx.get('tag')!r} is not one of the expected kinds: {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        name = str(ctx.get("discriminator", "")).strip("'")
        if name.isidentifier():
            return f"the {name!r} field is required to tell which kind this is"
        return "cannot tell which kind this is"
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def validation_message(errors: Sequence[Any], body: Any = _UNKNOWN) -> str:
    """'question.target[0]: Input should be a valid string; Input should be a valid integer'."""
    if not errors:
        return "the request is invalid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        ctx = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON ({ctx})" if ctx else "the body is not JSON"
    found: dict[str, list[tuple[str, bool]]] = {}  # field -> (problem, is a plain type mismatch)
    for err in errors:
        where = field_path(err.get("loc", ()), body, err.get("type") == "missing")
        msg = problem(err)
        mismatch = str(err.get("type", "")).endswith("_type")
        if (msg, mismatch) not in found.setdefault(where, []):
            found[where].append((msg, mismatch))
    shown: list[tuple[str, str]] = []
    for where, msgs in found.items():
        # a union member the value has the type of failed on something real (here or inside the
        # value): the other members' "should be a string" is noise
        real = [m for m, mismatch in msgs if not mismatch]
        deeper = any(w.startswith((f"{where}.", f"{where}[")) for w in found if where)
        if not real and deeper:
            continue
        shown += [(where, m) for m in (real or [m for m, _ in msgs])]
    parts, prev = [], None
    for where, msg in shown[:MAX_PROBLEMS]:
        parts.append(f"{where}: {msg}" if where and where != prev else msg)
        prev = where
    more = len(shown) - MAX_PROBLEMS
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more > 0 else ""
    return "; ".join(parts) + tail

"""An argument that is not UTF-8 (bash's `$'\\xff\\xfe abc'`) is one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lenscope.errors import InputError
from lenscope.text import check_arguments, check_text, find_invalid_text, text_problem


def _lenscope(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lenscope.cli.main", *args],
        capture_output=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )


@pytest.mark.parametrize(
    "args",
    [
        ("run", "mini", b"\xff\xfe abc"),
        ("lens", "mini", b"The keys \xe9"),
        ("why", "mini", "x = 1", "--target", b"\x80"),
    ],
)
def test_bytes_that_are_not_utf8_are_one_red_line(args: tuple[str | bytes, ...]) -> None:
    r = _lenscope(*args)
    bad = next(i for i, a in enumerate(args, 1) if isinstance(a, bytes))
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "Traceback" not in err and r.stdout == b""
    assert err.strip() == (
        f"error: argument {bad} ({args[bad - 1]!r}) is not UTF-8 text; give prompts and tokens as "
        "UTF-8"
    )


def test_utf8_arguments_still_run() -> None:
    r = _lenscope("run", "mini", "x = 'é' + ", "--top-k", "2", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert b"candidates" in r.stdout


def test_the_validator_against_utf8_encoding() -> None:
    """Valid text is exactly what encodes as UTF-8 (brute force over every BMP code point, the
    surrogates included, and one astral character)."""
    for cp in [*range(0x10000), 0x1F600]:
        c = chr(cp)
        try:
            c.encode("utf-8")
            ok = True
        except UnicodeEncodeError:
            ok = False
        assert (text_problem("ab" + c) is None) == ok, hex(cp)
    assert text_problem("ab\udfff") == (
        "is not valid Unicode text: it holds a lone surrogate (U+DFFF) at character 2"
    )
    assert check_text("fine") == "fine"
    with pytest.raises(InputError, match=r"^the prompt is not valid Unicode text"):
        check_text("\ud800", "the prompt")
    body = {"a": [1, {"b": "ok"}, {"c": ["x", "\ud801"]}], "d": "\ud802"}
    assert find_invalid_text(body) == (
        "a[2].c[1]",
        "is not valid Unicode text: it holds a lone surrogate (U+D801) at character 0",
    )
    deep: object = "\ud800"
    for _ in range(100_000):  # no recursion: any depth is walked
        deep = [deep]
    found = find_invalid_text(deep)
    assert found is not None and found[0].endswith("[0][0]")
    with pytest.raises(InputError, match=r"argument 2 \(b'\\xe9'\) is not UTF-8"):
        check_arguments(["run", "\udce9"])
    with pytest.raises(InputError, match=r"argument 1 \(b'\\\\ud800'\) is not UTF-8"):
        check_arguments(["\ud800"])
    check_arguments(["run", "mini", "é 😀"])

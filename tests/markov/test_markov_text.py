"""Token sequences written as text: one parser for `lenscope markov --train` and the server."""

from __future__ import annotations

import re

import pytest

from lenscope.cli.markov import parse_tokens
from lenscope.errors import InputError
from lenscope.markov.states import parse_token_text


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("111101111011110", [int(c) for c in "111101111011110"]),
        (" 0110 ", [0, 1, 1, 0]),
        ("3 11 0", [3, 11, 0]),
        ("3,1,4", [3, 1, 4]),
        ("3,\t12\n7", [3, 12, 7]),
    ],
)
def test_digits_or_separated_ids(text: str, ids: list[int]) -> None:
    assert parse_token_text(text) == ids
    assert parse_tokens(text) == ids


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "the training sequence is empty; give e.g. 111101111011110"),
        ("01a1", "symbol 'a' at position 2 is not a token id"),
        ("1 -2", "symbol '-2' at position 1"),
        ("1 1234", "symbol '1234' at position 1"),
    ],
)
def test_bad_text_is_a_one_line_error(text: str, needle: str) -> None:
    with pytest.raises(InputError, match=re.escape(needle)):
        parse_token_text(text)


def test_the_cli_names_its_option_when_empty() -> None:
    with pytest.raises(InputError, match=re.escape("give e.g. --train 111101111011110")):
        parse_tokens("  ")

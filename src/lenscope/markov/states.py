"""The state space of a tiny GPT seen as a Markov chain: contexts of up to C tokens from V.

A state is the model's whole input, a tuple of at most C token ids. Feeding the model a state gives
next-token probabilities; sampling token t moves to the state with t appended, cropped to its last C
tokens. States are ordered by length (shortest first), then lexicographically, so the index of a
context of length k with base-V value x is offset(k) + x.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from lenscope.errors import InputError

MAX_STATES = 4096
"""Largest V**C the Markov view accepts (the dense transition matrix stays small)."""

State = tuple[int, ...]


def check_size(V: int, C: int) -> None:
    """Refuse vocabularies/contexts whose full-length state space exceeds MAX_STATES."""
    if V < 1 or C < 1:
        raise InputError(f"the Markov view needs V >= 1 and C >= 1, got V={V}, C={C}")
    n = V**C
    if n > MAX_STATES:
        shown = str(n) if n < 10**12 else f"~10^{len(str(n)) - 1}"
        raise InputError(
            f"model too big for the Markov view: V^C = {V}^{C} = {shown} states, limit "
            f"{MAX_STATES}; use a smaller vocabulary or context"
        )


def enumerate_states(V: int, C: int, include_short: bool = False) -> list[State]:
    """All contexts of length C (V**C of them); with include_short also lengths 1..C-1 first."""
    check_size(V, C)
    lengths = range(1, C + 1) if include_short else range(C, C + 1)
    return [s for k in lengths for s in itertools.product(range(V), repeat=k)]


def state_name(state: Sequence[int], V: int) -> str:
    """'101' for V <= 10; dot-separated ids ('3.11.0') for larger vocabularies."""
    if V <= 10:
        return "".join(str(t) for t in state)
    return ".".join(str(t) for t in state)


def next_state_table(V: int, C: int, include_short: bool = False) -> np.ndarray:
    """[S, V] int64: index of the state reached from each state by appending each token."""
    check_size(V, C)
    lengths = list(range(1, C + 1)) if include_short else [C]
    offsets = _offsets(V, lengths)
    table = []
    tokens = np.arange(V, dtype=np.int64)
    for k in lengths:
        values = np.arange(V**k, dtype=np.int64)[:, None]
        appended = values * V + tokens[None, :]
        if k < C:
            table.append(offsets[k + 1] + appended)
        else:
            table.append(offsets[C] + appended % (V**C))
    return np.concatenate(table, axis=0)


def state_index(state: Sequence[int], V: int, C: int, include_short: bool = False) -> int:
    """Index of a context in the order of `enumerate_states`."""
    k = len(state)
    if not (1 <= k <= C) or (k < C and not include_short):
        raise InputError(f"context of length {k} is not a state here; states have length {C}")
    lengths = list(range(1, C + 1)) if include_short else [C]
    value = 0
    for t in state:
        value = value * V + int(t)
    return _offsets(V, lengths)[k] + value


def parse_token_text(text: str, example: str = "111101111011110") -> list[int]:
    """Token ids written as text: '111101111011110' -> digits; '3 1 4' or '3,1,4' -> ids (what
    `lenscope markov --train` and the server's Markov page take). `example` is shown when empty."""
    raw = text.strip()
    if not raw:
        raise InputError(f"the training sequence is empty; give e.g. {example}")
    parts = raw.replace(",", " ").split() if any(c in raw for c in ", \t\n") else list(raw)
    out = []
    for pos, p in enumerate(parts):
        if not p.isdigit() or len(p) > 3:
            raise InputError(
                f"symbol {p[:10]!r} at position {pos} is not a token id; write digits ('0110') "
                "or space-separated ids ('3 11 0')"
            )
        out.append(int(p))
    return out


def parse_sequence(sequence: str | Sequence[int], V: int, C: int) -> list[int]:
    """Token ids of a training sequence: a digit string ('111101111011110') or a list of ids."""
    check_size(V, C)
    if isinstance(sequence, str):
        tokens = []
        for pos, ch in enumerate(sequence):
            if not ch.isdigit() or int(ch) >= V:
                raise InputError(
                    f"symbol {ch!r} at position {pos} is not a token of the vocabulary 0..{V - 1}; "
                    f"write the sequence with digits below {V}"
                )
            tokens.append(int(ch))
    else:
        tokens = []
        for pos, t in enumerate(sequence):
            if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < V:
                raise InputError(
                    f"symbol {t!r} at position {pos} is not a token of the vocabulary 0..{V - 1}; "
                    f"use token ids below {V}"
                )
            tokens.append(int(t))
    if len(tokens) <= C:
        raise InputError(
            f"sequence has {len(tokens)} tokens but needs more than the context length {C} "
            "to hold at least one (context -> next token) example"
        )
    return tokens


def _offsets(V: int, lengths: Sequence[int]) -> dict[int, int]:
    offsets, total = {}, 0
    for k in lengths:
        offsets[k] = total
        total += V**k
    return offsets

"""What the training sequence itself says: (context -> next token) counts per state.

Karpathy's baby GPT is trained on the windows of '111101111011110': every C consecutive tokens
predict the next one. Counting those windows shows which states were seen in training (and their
empirical next-token frequencies) and which the model must fill in from its inductive bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenscope.jsonable import JsonResult
from lenscope.markov.states import (
    enumerate_states,
    parse_sequence,
    state_index,
    state_name,
)


@dataclass(frozen=True, eq=False)
class EmpiricalTransitions(JsonResult):
    """counts[s, t]: how often state s was followed by token t in the training sequence."""

    V: int
    C: int
    include_short: bool
    states: list[str]
    counts: np.ndarray

    @property
    def totals(self) -> np.ndarray:
        """[S] number of training examples whose context is each state."""
        return np.asarray(self.counts.sum(axis=1))

    @property
    def n_examples(self) -> int:
        return int(self.counts.sum())

    @property
    def seen(self) -> np.ndarray:
        """[S] bool: the state occurred as a context in training."""
        return np.asarray(self.totals > 0)

    @property
    def seen_states(self) -> list[str]:
        return [s for s, seen in zip(self.states, self.seen, strict=True) if seen]

    @property
    def unseen_states(self) -> list[str]:
        return [s for s, seen in zip(self.states, self.seen, strict=True) if not seen]

    @property
    def frequencies(self) -> np.ndarray:
        """[S, V] empirical next-token frequencies; rows of unseen states are NaN."""
        totals = self.totals.astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, self.counts / np.maximum(totals, 1.0), np.nan)

    def to_json(self) -> dict[str, Any]:
        freqs = self.frequencies
        return {
            "V": self.V,
            "C": self.C,
            "include_short": self.include_short,
            "n_examples": self.n_examples,
            "states": list(self.states),
            "counts": self.counts.tolist(),
            "frequencies": [
                None if not seen else row.tolist()
                for row, seen in zip(freqs, self.seen, strict=True)
            ],
            "seen_states": self.seen_states,
            "unseen_states": self.unseen_states,
        }


def empirical_transitions(
    sequence: str | Sequence[int], V: int, C: int, include_short: bool = False
) -> EmpiricalTransitions:
    """Count (context -> next token) over every length-C window of `sequence`.

    `sequence` is a digit string ('111101111011110') or a list of token ids; it must be longer
    than C. With include_short the shorter prefixes of every window are counted too (what a model
    trained with a loss at every position sees), in the same state order as the chain.
    """
    tokens = parse_sequence(sequence, V, C)
    states = enumerate_states(V, C, include_short)
    counts = np.zeros((len(states), V), dtype=np.int64)
    lengths = range(1, C + 1) if include_short else range(C, C + 1)
    for i in range(len(tokens) - C):
        for k in lengths:
            ctx = tokens[i : i + k]
            counts[state_index(ctx, V, C, include_short), tokens[i + k]] += 1
    names = [state_name(s, V) for s in states]
    return EmpiricalTransitions(V, C, include_short, names, counts)

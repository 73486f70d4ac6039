"""One interface for explainers, and simulation scoring as in OpenAI's automated interpretability.

A node's record is split into an explanation set and a held-out set, each with top and random
examples 1:1 (top examples alternate between the sets; so do random ones). The explainer writes
an explanation from the explanation set; a simulator predicts the activation of every held-out
token from the explanation alone; the score is the correlation between predicted and true
activations pooled over all held-out tokens. The shuffled control is the 95th percentile of that
correlation when the true activations are randomly permuted across the held-out tokens (200
permutations): a score below it is indistinguishable from chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lenscope.jsonable import JsonResult
from lenscope.records.results import Example, NodeRecord

CONTROL_PERMUTATIONS = 200


class ExplainFailure(Exception):
    """An explainer or simulator could not produce an answer (recorded, never raised to users)."""


class Explainer(Protocol):
    name: str
    label: str  # what kind of explanation this is, shown beside it

    def explain(self, record: NodeRecord, examples: Sequence[Example]) -> str: ...

    def simulate(
        self, record: NodeRecord, explanation: str, examples: Sequence[Example]
    ) -> list[list[float]]: ...


@dataclass
class Split:
    explain: list[Example]
    heldout: list[Example]


def split_examples(record: NodeRecord) -> Split:
    """Explanation and held-out sets, each with as many top as random examples when possible."""
    top, rnd = record.top, record.random
    exp_top, held_top = top[0::2], top[1::2]
    exp_rnd, held_rnd = rnd[0::2], rnd[1::2]
    if exp_rnd:
        n = min(len(exp_top), len(exp_rnd))
        exp_top, exp_rnd = exp_top[:n], exp_rnd[:n]
    if held_rnd:
        n = min(len(held_top), len(held_rnd))
        held_top, held_rnd = held_top[:n], held_rnd[:n]
    return Split(exp_top + exp_rnd, held_top + held_rnd)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation; 0 when the prediction is constant, None when the truth is."""
    if a.size < 2 or float(a.std()) == 0.0:
        return None
    if float(b.std()) == 0.0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class Score(JsonResult):
    score: float | None
    control: float | None
    n_tokens: int


def score_simulation(
    examples: Sequence[Example], simulated: Sequence[Sequence[float]], seed: int = 0
) -> Score:
    """Pooled correlation of simulated vs true activations, and the shuffled control."""
    if len(simulated) != len(examples):
        raise ExplainFailure(f"simulated {len(simulated)} examples, expected {len(examples)}")
    for e, s in zip(examples, simulated, strict=True):
        if len(s) != len(e.acts):
            raise ExplainFailure(f"simulated {len(s)} tokens of an example of {len(e.acts)}")
    true = np.array([a for e in examples for a in e.acts], dtype=np.float64)
    sim = np.array([a for s in simulated for a in s], dtype=np.float64)
    if true.size == 0:
        return Score(None, None, 0)
    r = pearson(true, sim)
    if r is None:
        return Score(None, None, int(true.size))
    return Score(r, shuffled_control(true, sim, seed), int(true.size))


def shuffled_control(true: np.ndarray, sim: np.ndarray, seed: int = 0) -> float:
    """95th percentile of corr(permuted truth, simulation) over `CONTROL_PERMUTATIONS` shuffles."""
    if float(sim.std()) == 0.0:
        return 0.0
    rng = np.random.default_rng(seed)
    t = (true - true.mean()) / true.std()
    s = (sim - sim.mean()) / sim.std()
    perms = rng.permuted(np.broadcast_to(t, (CONTROL_PERMUTATIONS, t.size)), axis=1)
    null = perms @ s / t.size
    return float(np.quantile(null, 0.95))

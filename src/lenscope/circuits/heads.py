"""Behavioural head detectors and the induction circuit (with its weight-based K-composition).

On [BOS, r, r], r a random token sequence drawn away from the rarest and commonest ids
(`lenscope.data.repeated.repeated_tokens`), each head gets three scores, its mean attention:

* previous-token: from every position to the one before it;
* duplicate-token: from each token of the second copy to the same token in the first copy;
* induction: from each token of the second copy to the token *after* its first occurrence.

An induction head needs a previous-token head in an earlier layer writing into its keys: the
weight-based view ranks earlier heads by K-composition into each induction head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lenscope.circuits.composition import CompositionScores, composition_scores
from lenscope.circuits.folding import CircuitWeights, circuit_weights
from lenscope.circuits.tables import head_id
from lenscope.data.repeated import repeat_scores
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

INDUCTION_THRESHOLD = 0.3
PREV_TOKEN_THRESHOLD = 0.3


@dataclass(frozen=True)
class HeadScores(JsonResult):
    """Scores per [layer][head]; losses in nats on the first and the repeated half."""

    previous_token: list[list[float]]
    duplicate_token: list[list[float]]
    induction: list[list[float]]
    loss_first_half: float
    loss_repeat_half: float
    seq_len: int
    n_seqs: int

    def best(self, kind: str) -> tuple[str, float]:
        grid: list[list[float]] = getattr(self, kind)
        lay, h, v = max(
            ((lay, h, v) for lay, row in enumerate(grid) for h, v in enumerate(row)),
            key=lambda x: x[2],
        )
        return head_id(lay, h), v

    def heads_above(self, kind: str, threshold: float) -> list[tuple[str, float]]:
        grid: list[list[float]] = getattr(self, kind)
        hits = [
            (head_id(lay, h), v)
            for lay, row in enumerate(grid)
            for h, v in enumerate(row)
            if v >= threshold
        ]
        return sorted(hits, key=lambda x: -x[1])


@torch.no_grad()
@isolated
def head_scores(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 16, seed: int = 0
) -> HeadScores:
    """Previous-token, duplicate-token and induction scores of every head, plus the two losses."""
    seq_len = max(1, min(seq_len, (model.cfg.n_ctx - 1) // 2))
    return HeadScores(*repeat_scores(model, seq_len, n_seqs, seed), seq_len, n_seqs)


@dataclass(frozen=True)
class InductionPair(JsonResult):
    """An induction head and the earlier head with the strongest K-composition into it."""

    induction_head: str
    induction_score: float
    previous_token_head: str
    previous_token_score: float
    k_composition: float


@dataclass(frozen=True, eq=False)
class InductionCircuit(JsonResult):
    scores: HeadScores
    induction_heads: list[tuple[str, float]]
    previous_token_heads: list[tuple[str, float]]
    pairs: list[InductionPair]
    k_composition: CompositionScores | None
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.induction_heads)

    def to_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "thresholds": self.thresholds,
            "induction_heads": [{"head": h, "score": s} for h, s in self.induction_heads],
            "previous_token_heads": [{"head": h, "score": s} for h, s in self.previous_token_heads],
            "pairs": [vars(p) for p in self.pairs],
            "loss_first_half": self.scores.loss_first_half,
            "loss_repeat_half": self.scores.loss_repeat_half,
            "scores": {
                "previous_token": self.scores.previous_token,
                "duplicate_token": self.scores.duplicate_token,
                "induction": self.scores.induction,
            },
        }


def find_induction_circuit(
    model: HookedTransformer,
    scores: HeadScores | None = None,
    weights: CircuitWeights | None = None,
    induction_threshold: float = INDUCTION_THRESHOLD,
    prev_threshold: float = PREV_TOKEN_THRESHOLD,
) -> InductionCircuit:
    """Induction heads (behaviour), previous-token heads, and which one feeds each induction head.

    An induction head's partner is the earlier-layer head with the highest K-composition score
    among the previous-token heads (among all earlier heads when none passes the threshold).
    A head in layer 0 cannot be an induction head (nothing earlier can shift its keys).
    """
    scores = scores or head_scores(model)
    above = scores.heads_above("induction", induction_threshold)
    ind = [(h, s) for h, s in above if _parse(h)[0] > 0]
    prev = scores.heads_above("previous_token", prev_threshold)
    kcomp = None
    pairs: list[InductionPair] = []
    if model.cfg.n_layers >= 2:
        weights = weights or circuit_weights(model, freeze_scales=False)
        kcomp = composition_scores(weights, "K")
    if kcomp is not None:
        for head, score in ind:
            lay, h = _parse(head)
            candidates = [p for p, _ in prev if _parse(p)[0] < lay] or [
                head_id(a, b) for a in range(lay) for b in range(model.cfg.n_heads)
            ]
            best = max(candidates, key=lambda c: kcomp.score(_parse(c), (lay, h)))
            bl, bh = _parse(best)
            pairs.append(
                InductionPair(
                    head,
                    score,
                    best,
                    scores.previous_token[bl][bh],
                    kcomp.score((bl, bh), (lay, h)),
                )
            )
    return InductionCircuit(
        scores,
        ind,
        prev,
        pairs,
        kcomp,
        {"induction": induction_threshold, "previous_token": prev_threshold},
    )


def _parse(node: str) -> tuple[int, int]:
    lay, h = node.split(".")
    return int(lay[1:]), int(h[1:])


def induction_summary(model: HookedTransformer) -> str:
    """One line for demos: the induction heads and the previous-token heads feeding them."""
    circuit = find_induction_circuit(model)
    if not circuit.found:
        best, score = circuit.scores.best("induction")
        return f"{model.cfg.name}: no induction head (best {best} scores {score:.2f})"
    parts = [
        f"{p.induction_head} (induction {p.induction_score:.2f}) <- {p.previous_token_head} "
        f"(previous-token {p.previous_token_score:.2f}, K-composition {p.k_composition:.3f})"
        for p in circuit.pairs
    ]
    return f"{model.cfg.name}: induction heads " + "; ".join(parts)

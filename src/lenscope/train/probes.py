"""Behavioural probes used during training and by the head detectors: induction and previous-token.

An induction probe feeds [BOS, r, r] (`lenscope.data.repeated`) where r is a random token sequence;
an induction head attends from each token of the second copy to the token *after* that token's
first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenscope.data.repeated import repeat_scores
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated


@dataclass
class InductionProbe:
    induction: list[list[float]]  # [layer][head] mean attention to the token after the earlier copy
    prev_token: list[list[float]]  # [layer][head] mean attention to the previous position
    loss_first_half: float
    loss_repeat_half: float
    seq_len: int
    n_seqs: int

    @property
    def best_induction(self) -> tuple[int, int, float]:
        return _best(self.induction)

    @property
    def best_prev_token(self) -> tuple[int, int, float]:
        return _best(self.prev_token)


def _best(grid: list[list[float]]) -> tuple[int, int, float]:
    best = max(
        ((lay, h, v) for lay, row in enumerate(grid) for h, v in enumerate(row)), key=lambda t: t[2]
    )
    return best


@torch.no_grad()
@isolated
def induction_probe(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 32, seed: int = 0
) -> InductionProbe:
    seq_len = min(seq_len, (model.cfg.n_ctx - 1) // 2)
    prev, _, ind, first, repeat = repeat_scores(model, seq_len, n_seqs, seed)
    return InductionProbe(ind, prev, first, repeat, seq_len, n_seqs)

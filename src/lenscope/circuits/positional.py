"""Which relative offsets a head prefers, from the positional embedding alone.

The positional QK term of head h is the score a query at position q gives a key at position k
when the residual holds only positions: (P_q W_Q + b_Q)(P_k W_K)^T / sqrt(d_head), with P the
(centred, scale-frozen) W_pos. Per offset o = q - k we report the mean centred score and the mean
attention probability it would produce (softmax over keys k <= q), averaged over the queries
q >= max_offset (which see every offset). A previous-token head shows a peak at offset 1. For heads after layer 0 this
is the direct positional path only (positions can also arrive through earlier heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lenscope.circuits.folding import CircuitWeights
from lenscope.circuits.tables import head_id
from lenscope.errors import InputError


@dataclass(frozen=True)
class OffsetPreference:
    head: str
    offsets: list[int]  # 0 (self) .. max_offset
    mean_score: list[float]  # centred per query row, averaged over queries
    mean_attention: list[float]
    preferred_offset: int  # argmax of mean attention

    def to_json(self) -> dict[str, Any]:
        return vars(self).copy()


def positional_scores(
    cw: CircuitWeights, layer: int, head: int, n_pos: int | None = None
) -> torch.Tensor:
    """[n_pos, n_pos] positional attention scores (query rows, key columns), causal-masked."""
    if cw.W_pos is None:
        raise InputError(
            "positional QK terms need a learned positional embedding (W_pos); "
            "this model uses rotary or no positions"
        )
    cw.check_head(layer, head)
    P = cw.W_pos / cw.ln.ln1_scale[layer]
    n = P.shape[0] if n_pos is None else min(n_pos, P.shape[0])
    P = P[:n]
    q = P @ cw.W_Q[layer, head] + cw.b_Q[layer, head]
    k = P @ cw.W_K[layer, head]
    scores = (q @ k.T) / cw.attn_scale
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf"))


def offset_preference(
    cw: CircuitWeights, layer: int, head: int, max_offset: int = 16, n_pos: int | None = None
) -> OffsetPreference:
    scores = positional_scores(cw, layer, head, n_pos)
    n = scores.shape[0]
    max_offset = max(0, min(max_offset, n - 1))
    pattern = torch.softmax(scores, dim=-1)
    finite = torch.isfinite(scores)
    row_mean = torch.where(finite, scores, 0.0).sum(-1) / finite.sum(-1)
    centred = scores - row_mean[:, None]
    offsets = list(range(max_offset + 1))
    mean_score, mean_attn = [], []
    q = torch.arange(max_offset, n)  # queries that see every offset, so offsets compare fairly
    for o in offsets:
        mean_score.append(float(centred[q, q - o].mean()))
        mean_attn.append(float(pattern[q, q - o].mean()))
    best = int(torch.tensor(mean_attn).argmax())
    return OffsetPreference(head_id(layer, head), offsets, mean_score, mean_attn, offsets[best])


def all_offset_preferences(
    cw: CircuitWeights, max_offset: int = 16, n_pos: int | None = None
) -> list[OffsetPreference]:
    return [
        offset_preference(cw, layer, head, max_offset, n_pos)
        for layer in range(cw.n_layers)
        for head in range(cw.n_heads)
    ]

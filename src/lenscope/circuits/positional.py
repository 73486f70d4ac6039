"""Which relative offsets a head prefers, read from its weights.

On a sequence of random tokens (drawn from `pool`, default every token) the residual at position
p is x_p = e_t + P_p (embedding of the token there plus the positional embedding; centred and
divided by the frozen ln1 scale like every circuit here). A head's expected score from a query at
q to a key at k != q (independent tokens) is

    ((ē + P_q) W_Q + b_Q) . ((ē + P_k) W_K) / sqrt(d_head)

with ē the pool's mean embedding; at k = q the key holds the query's own token, which adds the
token term mean_t (e_t - ē) W_Q W_K^T (e_t - ē)^T / sqrt(d_head) (negative for a head that avoids
its own token, as previous-token heads do). `positional_scores` is the positional term alone.

Per offset o = q - k we report the mean centred score and the mean attention probability the
expected scores produce (softmax over keys 1..q), averaged over the same queries for every offset,
q = max_offset + 1 .. n - 1. Key 0 is left out: it holds BOS, which many heads use as an
attention sink, and counting it made the largest offset (the only one reaching key 0) look
preferred. A previous-token head peaks at offset 1. For heads after layer 0 this is the direct
path only: what earlier heads write also reaches their queries and keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lenscope.circuits.folding import CircuitWeights
from lenscope.circuits.tables import head_id
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult

TokenMoments = tuple[Tensor, Tensor]  # mean [d] and covariance [d, d] of the pool's embeddings


@dataclass(frozen=True)
class OffsetPreference(JsonResult):
    head: str
    offsets: list[int]  # 0 (self) .. max_offset
    mean_score: list[float]  # centred per query row (keys 1..q), averaged over queries
    mean_attention: list[float]  # softmax over keys 1..q (key 0, the BOS sink, left out)
    preferred_offset: int  # argmax of mean attention

    def to_json(self) -> dict[str, Any]:
        return vars(self).copy()


def _positions(cw: CircuitWeights, layer: int, head: int, n_pos: int | None) -> Tensor:
    if cw.W_pos is None:
        raise InputError(
            "positional QK terms need a learned positional embedding (W_pos); "
            "this model uses rotary or no positions"
        )
    cw.check_head(layer, head)
    P = cw.W_pos / cw.ln.ln1_scale[layer]
    return P if n_pos is None else P[: min(n_pos, P.shape[0])]


def _causal(scores: Tensor) -> Tensor:
    n = scores.shape[0]
    causal = torch.ones(n, n, dtype=torch.bool, device=scores.device).tril()
    return scores.masked_fill(~causal, float("-inf"))


def positional_scores(
    cw: CircuitWeights, layer: int, head: int, n_pos: int | None = None
) -> torch.Tensor:
    """[n_pos, n_pos] positional attention scores (query rows, key columns), causal-masked."""
    P = _positions(cw, layer, head, n_pos)
    q = P @ cw.W_Q[layer, head] + cw.b_Q[layer, head]
    k = P @ cw.W_K[layer, head]
    return _causal((q @ k.T) / cw.attn_scale)


def token_moments(cw: CircuitWeights, pool: Tensor | None = None) -> TokenMoments:
    """Mean and covariance of the (centred, unscaled) embeddings of the tokens in `pool`."""
    E = cw.W_E if pool is None else cw.W_E[pool.to(cw.W_E.device)]
    if E.shape[0] == 0:
        raise InputError("the token pool is empty")
    mean = E.mean(0)
    C = E - mean
    return mean, (C.T @ C) / E.shape[0]


def expected_scores(
    cw: CircuitWeights,
    layer: int,
    head: int,
    n_pos: int | None = None,
    pool: Tensor | None = None,
    moments: TokenMoments | None = None,
) -> torch.Tensor:
    """[n_pos, n_pos] expected scores on random tokens from `pool` (see the module), causal."""
    P = _positions(cw, layer, head, n_pos)
    mean, cov = moments if moments is not None else token_moments(cw, pool)
    s = cw.ln.ln1_scale[layer]
    W_Q, W_K = cw.W_Q[layer, head], cw.W_K[layer, head]
    x = P + mean / s
    scores = (x @ W_Q + cw.b_Q[layer, head]) @ (x @ W_K).T
    same = (W_Q * (cov @ W_K)).sum() / s**2  # E[(e - ē) W_Q W_K^T (e - ē)^T]
    scores = scores + same * torch.eye(P.shape[0], dtype=scores.dtype, device=scores.device)
    return _causal(scores / cw.attn_scale)


def offset_preference(
    cw: CircuitWeights,
    layer: int,
    head: int,
    max_offset: int = 16,
    n_pos: int | None = None,
    pool: Tensor | None = None,
    moments: TokenMoments | None = None,
) -> OffsetPreference:
    scores = expected_scores(cw, layer, head, n_pos, pool, moments)[1:, 1:]  # key 0: the sink
    n = scores.shape[0]  # positions 1..n
    if n < 1:
        raise InputError("offset preferences need a context of at least 2 positions")
    max_offset = max(0, min(max_offset, n - 1))
    pattern = torch.softmax(scores, dim=-1)
    finite = torch.isfinite(scores)
    row_mean = torch.where(finite, scores, 0.0).sum(-1) / finite.sum(-1)
    centred = scores - row_mean[:, None]
    offsets = list(range(max_offset + 1))
    # rows are positions 1..n: row i is position i + 1; the queries q >= max_offset + 1 (rows
    # >= max_offset) reach every offset without touching key 0, so all offsets share them
    q = torch.arange(max_offset, n, device=scores.device)
    mean_score = [float(centred[q, q - o].mean()) for o in offsets]
    mean_attn = [float(pattern[q, q - o].mean()) for o in offsets]
    best = int(torch.tensor(mean_attn, device="cpu").argmax())
    return OffsetPreference(head_id(layer, head), offsets, mean_score, mean_attn, offsets[best])


def all_offset_preferences(
    cw: CircuitWeights, max_offset: int = 16, n_pos: int | None = None, pool: Tensor | None = None
) -> list[OffsetPreference]:
    moments = token_moments(cw, pool)
    return [
        offset_preference(cw, layer, head, max_offset, n_pos, moments=moments)
        for layer in range(cw.n_layers)
        for head in range(cw.n_heads)
    ]

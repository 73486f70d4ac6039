"""Vocabulary-sized circuits served in slices: the bigram table, full OV and full QK circuits.

Each circuit is a `FactoredMatrix` of shape [d_vocab, d_vocab] and rank <= d_head (+1 for a
bias), so asking for a token's row costs O(d_vocab * d_head); the vocab x vocab matrix is never
formed. Conventions (TransformerLens'):

* direct path (bigram table): rows = current token, columns = next-token logit; W_E W_U + b_U;
* full OV circuit of head h: rows = source (attended-to) token, columns = output-token logit;
  W_E W_V^h W_O^h W_U (bias-free, as the copying score uses it);
* full QK circuit of head h: rows = query (destination) token, columns = key (source) token;
  attention scores W_E W_Q^h W_K^hT W_E^T / sqrt(d_head) (bias-free).

Tokens enter through their embedding alone (no position, no other head), with the norms'
scales frozen as described by `CircuitWeights.ln`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lenscope.circuits.folding import CircuitWeights
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model.factored import FactoredMatrix
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import head_node_id

Kind = Literal["bigram", "ov", "qk"]
Labeler = Callable[[int], str]

DESCRIPTIONS: dict[str, str] = {
    "bigram": "direct path W_E W_U + b_U: rows = current token, entries = next-token logits",
    "ov": "full OV circuit W_E W_OV W_U: rows = attended-to token, entries = output logits",
    "qk": "full QK circuit W_E W_QK W_E^T / sqrt(d_head): rows = query token, "
    "entries = attention score per key token",
}


@dataclass(frozen=True)
class TokenScore(JsonResult):
    token: int
    text: str
    score: float


@dataclass(frozen=True)
class TopRow(JsonResult):
    """One row of a circuit: its token and the highest (and lowest) entries."""

    token: int
    text: str
    top: list[TokenScore]
    bottom: list[TokenScore]


@dataclass(frozen=True)
class TokenTable(JsonResult):
    """Top entries of some rows of a vocabulary circuit."""

    kind: str
    head: str | None  # node id "L1.H2"; None for the direct path
    description: str
    layernorm: str
    rows: list[TopRow]


def token_labeler(model: HookedTransformer) -> Labeler:
    """Readable text of a token id (the id itself when the model has no tokenizer)."""
    tok = model.tokenizer
    if tok is None:
        return str
    return lambda i: tok.str_tokens([i])[0]


def head_id(layer: int, head: int) -> str:
    return head_node_id(layer, head)


def direct_path(cw: CircuitWeights) -> FactoredMatrix:
    """The bigram table W_E W_U + b_U as a factored [V, V] matrix (bias as an extra rank)."""
    ones = torch.ones(cw.d_vocab, 1, dtype=cw.W_E.dtype, device=cw.W_E.device)
    A = torch.cat([cw.W_E, ones], dim=1)
    B = torch.cat([cw.unembed(), cw.b_U[None, :]], dim=0)
    return FactoredMatrix(A, B)


def full_ov(cw: CircuitWeights, layer: int, head: int) -> FactoredMatrix:
    """W_E W_V W_O W_U of one head, [V, V], rank <= d_head."""
    cw.check_head(layer, head)
    return FactoredMatrix(
        cw.embed_at(layer) @ cw.W_V[layer, head], cw.W_O[layer, head] @ cw.unembed()
    )


def full_qk(cw: CircuitWeights, layer: int, head: int) -> FactoredMatrix:
    """W_E W_Q W_K^T W_E^T / attn_scale of one head, [V, V], rank <= d_head."""
    cw.check_head(layer, head)
    E = cw.embed_at(layer)
    return FactoredMatrix(E @ cw.W_Q[layer, head], (E @ cw.W_K[layer, head]).T / cw.attn_scale)


def circuit(cw: CircuitWeights, kind: Kind, layer: int | None, head: int | None) -> FactoredMatrix:
    if kind == "bigram":
        return direct_path(cw)
    if layer is None or head is None:
        raise InputError(f"the {kind} circuit belongs to a head; give its layer and head")
    return full_ov(cw, layer, head) if kind == "ov" else full_qk(cw, layer, head)


def top_entries(
    fm: FactoredMatrix, rows: Sequence[int], k: int, label: Labeler = str
) -> list[TopRow]:
    """The k highest and lowest entries of each requested row (only those rows are formed)."""
    n = fm.ldim
    bad = [r for r in rows if not 0 <= r < n]
    if bad:
        raise InputError(f"token id {bad[0]} is outside the vocabulary [0, {n})")
    if not rows:
        return []
    k = max(1, min(k, fm.rdim))
    dense = fm.rows(list(rows)).AB  # [len(rows), V]
    hi = dense.topk(k, dim=-1)
    lo = dense.topk(k, dim=-1, largest=False)
    out = []
    for i, r in enumerate(rows):
        top = [
            TokenScore(int(t), label(int(t)), float(v)) for v, t in zip(*_pair(hi, i), strict=True)
        ]
        bottom = [
            TokenScore(int(t), label(int(t)), float(v)) for v, t in zip(*_pair(lo, i), strict=True)
        ]
        out.append(TopRow(int(r), label(int(r)), top, bottom))
    return out


def _pair(res: Any, i: int) -> tuple[list[float], list[int]]:
    return res.values[i].tolist(), res.indices[i].tolist()


def row_spread(fm: FactoredMatrix, chunk: int = 1024) -> Tensor:
    """[rows] max entry minus row mean, scanning `chunk` rows at a time (shift-invariant size)."""
    col_mean = fm.B.mean(dim=-1)  # row means of A @ B are A @ mean(B, cols)
    out = []
    for start in range(0, fm.ldim, chunk):
        block = fm.rows(slice(start, start + chunk))
        dense = block.AB
        out.append(dense.max(dim=-1).values - block.A @ col_mean)
    return torch.cat(out, dim=-1)


def strongest_rows(
    fm: FactoredMatrix, n: int, chunk: int = 1024, allowed: Tensor | None = None
) -> list[int]:
    """The n rows whose largest entry stands furthest above the row's mean (among `allowed`)."""
    spread = row_spread(fm, chunk)
    if allowed is not None and bool(allowed.any()):
        allowed = allowed.to(spread.device)
        spread = spread.masked_fill(~allowed, float("-inf"))
        n = min(n, int(allowed.sum()))
    return [int(i) for i in spread.topk(min(n, spread.shape[-1])).indices.tolist()]


def readable_tokens(d_vocab: int, label: Labeler) -> Tensor:
    """[V] bool: tokens whose text is readable (not a stray byte of a multi-byte character)."""
    return torch.tensor(
        [_readable(label(i)) for i in range(d_vocab)], dtype=torch.bool, device="cpu"
    )


def _readable(text: str) -> bool:
    return bool(text.strip()) and "\ufffd" not in text


def token_table(
    cw: CircuitWeights,
    kind: Kind,
    layer: int | None = None,
    head: int | None = None,
    tokens: Sequence[int] | None = None,
    k: int = 5,
    n_rows: int = 8,
    label: Labeler = str,
) -> TokenTable:
    """Top entries of a circuit for `tokens` (default: the `n_rows` strongest readable rows,
    skipping whitespace-only tokens and stray bytes of multi-byte characters)."""
    if kind not in DESCRIPTIONS:
        raise InputError(f"unknown circuit {kind!r}; choose bigram, ov or qk")
    fm = circuit(cw, kind, layer, head)
    if tokens is None:
        rows = strongest_rows(fm, n_rows, allowed=readable_tokens(fm.ldim, label))
    else:
        rows = list(tokens)
    node = None if kind == "bigram" else head_id(layer or 0, head or 0)
    return TokenTable(
        kind, node, DESCRIPTIONS[kind], cw.ln.describe(), top_entries(fm, rows, k, label)
    )

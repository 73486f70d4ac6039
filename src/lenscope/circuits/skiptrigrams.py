"""Skip-trigrams of a one-layer attention-only model, read from its weights.

A head implements "src ... dest -> out" when the query token dest attends to the key token src
(full QK circuit entry [dest, src] high) and attending to src raises the logit of out (full OV
circuit entry [src, out] high). Both entries are centred per row (softmax and logits ignore a
shift of a whole row), and a triple's score is the product of the two centred entries.

Search, never forming a vocab x vocab matrix: the `n_src` sources with the strongest OV rows
(scanned in chunks), then for each the `k` best outputs (its OV row) and the `k` destinations
that attend to it most (its QK column), keeping the `top` best triples per head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lenscope.circuits.folding import CircuitWeights
from lenscope.circuits.tables import Labeler, full_ov, full_qk, head_id, row_spread
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult


@dataclass(frozen=True)
class SkipTrigram(JsonResult):
    head: str
    src: int
    dest: int
    out: int
    text: str  # "src … dest → out"
    qk: float  # centred attention score of dest on src
    ov: float  # centred logit boost of out when attending to src
    score: float  # qk * ov

    def to_json(self) -> dict[str, Any]:
        return vars(self).copy()


def skip_trigrams(
    cw: CircuitWeights,
    layer: int = 0,
    head: int | None = None,
    n_src: int = 16,
    k: int = 4,
    top: int = 20,
    label: Labeler = str,
) -> list[SkipTrigram]:
    """The strongest skip-trigrams of each head (or one head) of a one-layer model."""
    if cw.n_layers != 1:
        raise InputError(
            f"skip-trigrams are read from the weights of 1-layer attention-only models; this one "
            f"has {cw.n_layers} layers (use the OV/QK tables and composition scores instead)"
        )
    heads = range(cw.n_heads) if head is None else [head]
    out: list[SkipTrigram] = []
    for h in heads:
        out.extend(_head_trigrams(cw, layer, h, n_src, k, top, label))
    return sorted(out, key=lambda t: -t.score)


def _head_trigrams(
    cw: CircuitWeights, layer: int, head: int, n_src: int, k: int, top: int, label: Labeler
) -> list[SkipTrigram]:
    ov, qk = full_ov(cw, layer, head), full_qk(cw, layer, head)
    V = cw.d_vocab
    n_src, k = max(1, min(n_src, V)), max(1, min(k, V))
    sources = row_spread(ov).topk(n_src).indices.tolist()
    ov_rows = ov.rows(sources).AB  # [n_src, V]
    ov_c = ov_rows - ov_rows.mean(-1, keepdim=True)
    qk_row_mean = qk.A @ qk.B.mean(-1)  # [V]: mean score of each query row over all keys
    qk_cols = qk.cols(sources).AB.T  # [n_src, V]: column src as a row over destinations
    qk_c = qk_cols - qk_row_mean[None, :]
    best_out = ov_c.topk(k, dim=-1)
    best_dest = qk_c.topk(k, dim=-1)
    node = head_id(layer, head)
    found = []
    for i, src in enumerate(sources):
        for ov_v, o in zip(best_out.values[i].tolist(), best_out.indices[i].tolist(), strict=True):
            for qk_v, d in zip(
                best_dest.values[i].tolist(), best_dest.indices[i].tolist(), strict=True
            ):
                if ov_v <= 0 or qk_v <= 0:
                    continue
                text = f"{label(src)!r} … {label(d)!r} → {label(o)!r}"
                found.append(
                    SkipTrigram(node, int(src), int(d), int(o), text, qk_v, ov_v, qk_v * ov_v)
                )
    found.sort(key=lambda t: -t.score)
    return found[:top]


def trigram_score(
    cw: CircuitWeights, layer: int, head: int, src: int, dest: int, out: int
) -> float:
    """The centred qk * ov score of one triple (for checking and for user-chosen triples)."""
    ov, qk = full_ov(cw, layer, head), full_qk(cw, layer, head)
    ov_row = ov.rows([src]).AB[0]
    qk_row = qk.rows([dest]).AB[0]
    ov_c = float(ov_row[out] - ov_row.mean())
    qk_c = float(qk_row[src] - qk_row.mean())
    return qk_c * ov_c

"""Why does head H attend from query q to key k: the score split into upstream contributions
through the query side and through the key side, and the token-pair view of every head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import bias_terms, is_view_term
from lenscope.attribution.frozen import push
from lenscope.attribution.ranking import Ranker
from lenscope.attribution.reads import post_scale, question_reads
from lenscope.attribution.results import NodeColumns, PromptInfo, Term, node_fields, token_at
from lenscope.attribution.table import str_tokens
from lenscope.attribution.trace_edges import upstream_chunks
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.nodes import Granularity, NodeId, NodeKind, head_node_id


@dataclass(kw_only=True)
class SideRow(NodeColumns):
    position: int | None = None
    key_position: int | None = None
    token: str | None = None
    key_token: str | None = None
    query_side: float
    key_side: float


@dataclass(kw_only=True)
class SideRanking(JsonResult):
    granularity: Granularity
    column: Literal["query_side", "key_side"]
    positive: list[str]
    negative: list[str]


@dataclass(kw_only=True)
class HeadAttention(JsonResult):
    """Token-pair view of one head at the query position: attention to each key and attention
    weighted by the norm of what the head writes from that key."""

    head: str
    attention: list[float]
    weighted: list[float]


@dataclass(kw_only=True)
class AttentionResult(JsonResult):
    model: str
    description: str
    prompt: PromptInfo
    layer: int
    head: int
    query_position: int
    key_position: int
    score: float  # pre-softmax, scaled as the softmax sees it
    probability: float
    rows: list[SideRow]
    rankings: list[SideRanking]
    query_terms: list[Term]
    key_terms: list[Term]
    query_total: float  # all query-side contributions + query terms == score
    key_total: float  # all key-side contributions + key terms == score
    pairs: list[HeadAttention]


def attention_result(cap: Capture, top_k: int) -> AttentionResult:
    if not cap.question.is_attention or cap.keys is None:
        raise InputError("attention explanations need an attention question (L.H:q:k)")
    if cap.batch.size != 1:
        raise InputError("explain attention for one prompt at a time")
    n = cap.batch.lengths[0]
    tokens = str_tokens(cap.model, cap.batch.tokens[0, :n].tolist())
    q_read, k_read = question_reads(cap)
    assert k_read is not None
    reads = {"q": q_read, "k": k_read}
    ranker = Ranker(cap, top_k, columns=("q", "k"), token_col="edge")
    totals = {"q": 0.0, "k": 0.0}
    for chunk in upstream_chunks(cap, reads):
        ranker.feed(chunk)
        if chunk.kind is not NodeKind.LATENT and chunk.granularity == "position":
            for s in totals:
                totals[s] += float(chunk.cols[s][0].sum())
    qt = {**bias_terms(cap, q_read), **q_read.terms}
    kt = {**bias_terms(cap, k_read), **k_read.terms}
    q_terms = [Term(name=k, value=float(v[0])) for k, v in qt.items()]
    k_terms = [Term(name=k, value=float(v[0])) for k, v in kt.items()]
    chosen, raw, values = ranker.rankings(0)
    rows = [_row(nd, values[nd], tokens) for nd in chosen]
    names = {"q": "query_side", "k": "key_side"}
    ranks = [
        SideRanking(granularity=g, column=names[c], positive=p, negative=m)  # type: ignore[arg-type]
        for g, c, p, m in raw
    ]
    lay, h = cap.question.layer, cap.question.head
    q, k = cap.answer[0], cap.keys[0]
    return AttentionResult(
        model=cap.model.cfg.name,
        description=cap.question.describe(q, k),
        prompt=PromptInfo(ids=cap.batch.tokens[0, :n].tolist(), tokens=tokens),
        layer=lay,
        head=h,
        query_position=q,
        key_position=k,
        score=float(cap.value[0]),
        probability=float(cap.layers[lay].pattern[0, h, q, k]),
        rows=rows,
        rankings=ranks,
        query_terms=q_terms,
        key_terms=k_terms,
        query_total=totals["q"] + sum(t.value for t in q_terms if not is_view_term(t.name)),
        key_total=totals["k"] + sum(t.value for t in k_terms if not is_view_term(t.name)),
        pairs=pair_view(cap, q),
    )


def pair_view(cap: Capture, query: int, row: int = 0) -> list[HeadAttention]:
    """Every captured head's attention from `query` over keys 0..query, plain and write-weighted."""
    out = []
    for lay, acts in enumerate(cap.layers):
        W_O = cap.w.W_O(lay)
        post = post_scale(cap, lay, "attn")
        if post is not None:  # what lands in the stream at the query: through the post-norm
            W_O = push(post[0], post[1][row, query], W_O)
        gram = W_O @ W_O.transpose(1, 2)
        vn = torch.einsum("khe,hef,khf->hk", acts.v[row], gram, acts.v[row]).clamp(min=0).sqrt()
        a = acts.pattern[row, :, query, : query + 1]
        weighted = a * vn[:, : query + 1]
        for h in range(a.shape[0]):
            out.append(
                HeadAttention(
                    head=head_node_id(lay, h),
                    attention=a[h].tolist(),
                    weighted=weighted[h].tolist(),
                )
            )
    return out


def _row(node: NodeId, values: dict[str, float], tokens: list[str]) -> SideRow:
    return SideRow(
        **node_fields(node),
        token=token_at(tokens, node.position),
        key_token=token_at(tokens, node.key_position),
        query_side=values.get("q", 0.0),
        key_side=values.get("k", 0.0),
    )

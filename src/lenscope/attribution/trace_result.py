"""Turn a trace over one captured prompt into a `TraceResult`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import is_view_term
from lenscope.attribution.ranking import Ranker
from lenscope.attribution.results import (
    EdgeRanking,
    EdgeRow,
    EdgeSum,
    Hop,
    LogitChange,
    PromptInfo,
    Term,
    TraceResult,
    node_fields,
    token_at,
)
from lenscope.attribution.table import str_tokens
from lenscope.attribution.trace_edges import (
    downstream_chunks,
    node_write,
    output_effects,
    path_reads,
    question_read,
    upstream_chunks,
    upstream_terms,
)
from lenscope.errors import InputError
from lenscope.interventions.plan import check_node
from lenscope.nodes import NodeId, NodeKind

_COL = {"edge": "edge", "q": "via_q", "k": "via_k", "v": "via_v"}


def trace_result(
    cap: Capture,
    path: Sequence[Hop],
    direction: Literal["upstream", "downstream"],
    top_k: int,
) -> TraceResult:
    if cap.batch.size != 1:
        raise InputError("trace one prompt at a time")
    hops = [(NodeId.parse(h.node), h.via) for h in path]
    if not hops:
        raise InputError("give a node to trace")
    n = cap.batch.lengths[0]
    tokens = str_tokens(cap.model, cap.batch.tokens[0, :n].tolist())
    carry: tuple[str, ...] = ()
    terms: dict[str, float] = {}
    direct = None
    out_pos = None
    promoted: list[LogitChange] = []
    suppressed: list[LogitChange] = []
    if direction == "upstream":
        reads = path_reads(cap, hops)
        if set(reads) == {"q", "k", "v"}:
            carry = ("q", "k", "v")
        ranker = Ranker(cap, top_k, columns=("edge",), carry=carry, token_col="edge")
        for chunk in upstream_chunks(cap, reads):
            ranker.feed(chunk)
        terms = {k: float(v[0]) for k, v in upstream_terms(cap, reads).items()}
    else:
        if len(hops) != 1:
            raise InputError(
                f"a downstream trace starts from one node; give exactly one (got {len(hops)})"
            )
        node, via = hops[0]
        if via is not None:
            raise InputError("q, k and v name a head's inputs; a downstream trace follows writes")
        check_node(cap.model, node, cap.sources, n)
        w = node_write(cap, node)
        carry = ("q", "k", "v")
        ranker = Ranker(cap, top_k, columns=("edge",), carry=carry, token_col="edge")
        for chunk in downstream_chunks(cap, node, w):
            ranker.feed(chunk)
        direct = float((w * question_read(cap).field).sum((1, 2))[0])
        eff = output_effects(cap, node, w)
        if eff is not None:
            out_pos, dl = eff
            promoted, suppressed = _tokens(cap, dl[0], top_k)
    chosen, raw, values = ranker.rankings(0)
    rows = [_row(nd, values[nd], tokens) for nd in chosen]
    ranks = [
        EdgeRanking(granularity=g, column=_COL[c], positive=p, negative=q)  # type: ignore[arg-type]
        for g, c, p, q in raw
    ]
    sums = [
        EdgeSum(kind=k, edge=float(s["edge"][0]))
        for k, s in ranker.kind_sums.items()
        if "edge" in s
    ]
    model_total = sum(s.edge for s in sums if s.kind is not NodeKind.LATENT)
    model_total += sum(v for k, v in terms.items() if not is_view_term(k))
    last = hops[-1][0]
    return TraceResult(
        model=cap.model.cfg.name,
        description=cap.question.describe(cap.answer[0], None if cap.keys is None else cap.keys[0]),
        value=float(cap.value[0]),
        prompt=PromptInfo(ids=cap.batch.tokens[0, :n].tolist(), tokens=tokens),
        direction=direction,
        path=list(path),
        node=str(last),
        rows=rows,
        rankings=ranks,
        sums=sums,
        terms=[Term(name=k, value=v) for k, v in terms.items()],
        edge_total=model_total,
        direct_effect=direct,
        output_position=out_pos,
        promoted=promoted,
        suppressed=suppressed,
    )


def _row(node: NodeId, values: dict[str, float], tokens: list[str]) -> EdgeRow:
    return EdgeRow(
        **node_fields(node),
        site=node.site,
        token=token_at(tokens, node.position),
        key_token=token_at(tokens, node.key_position),
        edge=values.get("edge", 0.0),
        via_q=values.get("q"),
        via_k=values.get("k"),
        via_v=values.get("v"),
    )


def _tokens(cap: Capture, dl: torch.Tensor, k: int) -> tuple[list[LogitChange], list[LogitChange]]:
    def make(vals: torch.Tensor, idx: torch.Tensor) -> list[LogitChange]:
        ids = idx.tolist()
        names = str_tokens(cap.model, ids)
        return [
            LogitChange(token=t, id=i, logit_change=float(v))
            for t, i, v in zip(names, ids, vals.tolist(), strict=True)
        ]

    k = min(k, dl.numel())
    top = dl.topk(k)
    bot = (-dl).topk(k)
    return make(top.values, top.indices), make(-bot.values, bot.indices)

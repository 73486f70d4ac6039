"""The debugger's questions: why (one prompt or a batch), compare, trace, attention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from lenscope.attribution.attention import AttentionResult
from lenscope.attribution.compare import Comparison, Side
from lenscope.attribution.results import Hop, NodeTable, TraceResult, WhyResult
from lenscope.interventions.spec import InterventionSet, Prompt
from lenscope.nodes import NodeKind
from lenscope.server.deps import get_state, prompt_ids
from lenscope.server.schemas import (
    AttentionRequest,
    CompareRequest,
    TraceRequest,
    WhyBatchRequest,
    WhyRequest,
    check_interventions,
    check_question,
)
from lenscope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["debugger"])


class WhyBatchResult(BaseModel):
    results: list[WhyResult]


def _check(
    state: ServerState,
    prompts: Sequence[Prompt],
    interventions: Sequence[InterventionSet | None] = (),
) -> None:
    model = state.model
    for i, p in enumerate(prompts):
        prompt_ids(model, p, "the prompt" if len(prompts) == 1 else f"prompt {i}")
    for iv in interventions:
        check_interventions(iv, model.cfg.d_model)
        for item in iv.interventions if iv else []:
            src = getattr(item, "source", None)
            if src is not None:
                prompt_ids(model, src, "an intervention's source prompt")
        for p in (iv.reference or []) if iv else []:
            prompt_ids(model, p, "a reference prompt")


def keep_kinds(res: WhyResult, kinds: Sequence[NodeKind] | None) -> WhyResult:
    """The result with only rows of the given node kinds (rankings follow)."""
    if not kinds:
        return res
    want = set(kinds)
    rows = [r for r in res.table.rows if r.kind in want]
    keep = {r.node for r in rows}
    ranks = [
        replace(
            rk,
            positive=[n for n in rk.positive if n in keep],
            negative=[n for n in rk.negative if n in keep],
        )
        for rk in res.table.rankings
    ]
    table: NodeTable = replace(res.table, rows=rows, rankings=ranks)
    return replace(res, table=table)


@router.post("/why", response_model=WhyResult, summary="Why does the model do this?")
async def why(req: WhyRequest, state: ServerState = Depends(get_state)) -> WhyResult:
    """Candidates, the node table (top `top_k` per column, the largest measured by ablation)
    and the token view for one prompt and one question, under optional interventions."""

    def job() -> WhyResult:
        check_question(req.question)
        _check(state, [req.prompt, *(req.reference or [])], [req.interventions])
        res = state.debugger.why(
            req.prompt,
            req.question,
            req.interventions,
            top_k=req.top_k,
            measure=req.measure,
            ablation=req.ablation,
            reference=req.reference,
        )
        return keep_kinds(res, req.kinds)

    return await state.heavy.run(job)


@router.post("/why/batch", response_model=WhyBatchResult, summary="One question, many prompts")
async def why_batch(
    req: WhyBatchRequest, state: ServerState = Depends(get_state)
) -> WhyBatchResult:
    def job() -> WhyBatchResult:
        check_question(req.question)
        _check(state, req.prompts, [req.interventions])
        res = state.debugger.why_batch(
            req.prompts, req.question, req.interventions, top_k=req.top_k, measure=req.measure
        )
        return WhyBatchResult(results=[keep_kinds(r, req.kinds) for r in res])

    return await state.heavy.run(job)


@router.post("/compare", response_model=Comparison, summary="Left, right and their difference")
async def compare(req: CompareRequest, state: ServerState = Depends(get_state)) -> Comparison:
    def job() -> Comparison:
        check_question(req.question)
        _check(
            state,
            [req.left.prompt, req.right.prompt],
            [req.left.interventions, req.right.interventions],
        )
        return state.debugger.compare(
            req.question,
            Side(prompt=req.left.prompt, interventions=req.left.interventions),
            Side(prompt=req.right.prompt, interventions=req.right.interventions),
            top_k=req.top_k,
            measure=req.measure,
        )

    return await state.heavy.run(job)


@router.post("/trace", response_model=TraceResult, summary="Trace a node upstream or downstream")
async def trace(req: TraceRequest, state: ServerState = Depends(get_state)) -> TraceResult:
    def job() -> TraceResult:
        check_question(req.question)
        _check(state, [req.prompt], [req.interventions])
        hops = [Hop.parse(h) for h in req.path]
        return state.debugger.trace(
            req.prompt, req.question, hops, req.direction, req.interventions, top_k=req.top_k
        )

    return await state.heavy.run(job)


@router.post("/attention", response_model=AttentionResult, summary="Why does a head attend?")
async def attention(
    req: AttentionRequest, state: ServerState = Depends(get_state)
) -> AttentionResult:
    """The head's attention score from the query to the key position, split into what the query
    side and the key side receive from every upstream node."""

    def job() -> AttentionResult:
        _check(state, [req.prompt], [req.interventions])
        return state.debugger.attention(
            req.prompt, req.question, req.interventions, top_k=req.top_k
        )

    return await state.heavy.run(job)

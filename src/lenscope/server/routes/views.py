"""The instruments beside the debugger: logit lens, weight-based circuits, the Markov chain."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from lenscope.lens import lens_generation, logit_lens
from lenscope.server.circuits_view import CircuitsView, TokenTableView, head_table, report_view
from lenscope.server.deps import get_state, prompt_ids, prompt_limit
from lenscope.server.errors import ApiError
from lenscope.server.markov_view import MarkovView, baby_chain, served_chain
from lenscope.server.schemas import BabyRequest, LensRequest
from lenscope.server.state import ServerState
from lenscope.server.views import LensView, lens_view

router = APIRouter(prefix="/api", tags=["views"])


@router.post("/lens", response_model=LensView, summary="The logit lens of a prompt")
async def lens(req: LensRequest, state: ServerState = Depends(get_state)) -> LensView:
    """Every layer's residual stream through the final norm and unembedding: top tokens, rank
    and probability of the next token and of watched tokens; optionally after generating. With
    `tuned`, the server's tuned lens (its translators, then the same projection)."""
    named = state.need_tuned() if req.tuned else None
    tuned, tuned_name = (named.lens, named.name) if named is not None else (None, None)

    def job() -> LensView:
        model = state.model
        ids = prompt_ids(model, req.prompt)
        if len(ids) + req.generate > prompt_limit(model):
            raise ApiError(
                400,
                f"{len(ids)} prompt tokens + {req.generate} to generate exceed the "
                f"{prompt_limit(model)} tokens this server reads for {model.cfg.name}",
                "InputError",
            )
        w, k, sub, prec = req.watch, req.k, req.sublayers, req.precision
        # the lens runs on a private view of the model (no cross-talk between requests)
        if req.generate:
            gen = lens_generation(
                model, ids, req.generate, watch=w, k=k, sublayers=sub, tuned=tuned, precision=prec
            )
            return lens_view(gen.lens, gen, tuned_name)
        res = logit_lens(model, ids, watch=w, k=k, sublayers=sub, tuned=tuned, precision=prec)
        return lens_view(res, tuned_name=tuned_name)

    return await state.heavy.run(job)


@router.get("/circuits", response_model=CircuitsView, summary="Heads read from the weights")
async def circuits(state: ServerState = Depends(get_state)) -> CircuitsView:
    """Q/K/V composition scores, previous-token / duplicate / induction / copying scores, the
    induction circuit, attention patterns on a repeated random sequence and the strongest rows
    of the bigram, OV and QK tables (computed once per server)."""
    return await state.heavy.run(report_view, state)


@router.get("/circuits/table", response_model=TokenTableView, summary="OV / QK / bigram rows")
async def circuit_table(
    kind: Literal["bigram", "ov", "qk"] = "ov",
    head: Annotated[str | None, Query(max_length=32)] = None,
    tokens: Annotated[list[str] | None, Query(max_length=16)] = None,
    k: Annotated[int, Query(ge=1, le=20)] = 5,
    n_rows: Annotated[int, Query(ge=1, le=32)] = 8,
    state: ServerState = Depends(get_state),
) -> TokenTableView:
    """Top and bottom entries of rows of the bigram table W_E W_U or of one head's full OV
    (source token -> output logits) or QK (query token -> key scores) circuit."""
    toks = [t[:100] for t in tokens or []]
    return await state.heavy.run(head_table, state, kind, head, toks, k, n_rows)


@router.get("/markov", response_model=MarkovView, summary="The served model as a Markov chain")
async def markov(
    threshold: Annotated[float, Query(ge=0.0, le=1.0)] = 0.01,
    state: ServerState = Depends(get_state),
) -> MarkovView:
    """Tiny models only (vocab^context at most 4096 states): every context's next-token
    probabilities, communicating classes, stationary distribution and the graph."""
    return await state.heavy.run(served_chain, state, threshold)


@router.post("/markov/baby", response_model=MarkovView, summary="Train a baby GPT, see its chain")
async def markov_baby(req: BabyRequest, state: ServerState = Depends(get_state)) -> MarkovView:
    """Karpathy's baby GPT trained on a short sequence: its chain at random init and after
    training, states seen in training marked."""
    return await state.heavy.run(baby_chain, req)

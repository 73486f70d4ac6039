"""Attribution graphs over HTTP: POST /api/graph (Neuronpedia JSON plus scores and lenscope
extras) and POST /api/graph/intervene (the real model's new top tokens after feature edits)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from lenscope.artifacts import lenscope_home, shipped_dir
from lenscope.errors import InputError
from lenscope.graphs.intervene import FeatureEdit, InterventionResult, intervene
from lenscope.sae.dictionary import Dictionary
from lenscope.server.deps import get_state, prompt_ids
from lenscope.server.schemas import PromptIn, QuestionIn, Strict, check_question
from lenscope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["graph"])

MAX_FEATURE_NODES = 8192
Share = Annotated[float, Field(gt=0, le=1)]
_CACHE: dict[tuple[int, str], list[Dictionary]] = {}


class GraphRequest(Strict):
    """The attribution graph of one prompt (see docs/graph.md)."""

    prompt: PromptIn
    question: QuestionIn | None = None
    transcoders: Annotated[str, Field(max_length=500)] | None = None
    max_feature_nodes: Annotated[int, Field(ge=1, le=MAX_FEATURE_NODES)] = 1024
    node_threshold: Share = 0.8
    edge_threshold: Share = 0.98


class GraphInterveneRequest(Strict):
    """Ablate or steer graph features in the real model and compare its next-token output."""

    prompt: PromptIn
    transcoders: Annotated[str, Field(max_length=500)] | None = None
    edits: Annotated[list[FeatureEdit], Field(min_length=1, max_length=64)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 5


def _transcoders(state: ServerState, name: str | None) -> list[Dictionary]:
    """A transcoder set by name, or a folder under the workspace or the shipped assets (a
    request may not make the server read anywhere else)."""
    from lenscope.graphs.sources import load_graph_transcoders

    key = (id(state), name or "")
    if key in _CACHE:
        return _CACHE[key]
    if name is not None and ("/" in name or Path(name).exists()):
        p = Path(name).expanduser().resolve()
        roots = [lenscope_home().resolve(), shipped_dir("assets").resolve()]
        if not any(p.is_relative_to(r) for r in roots):
            raise InputError(
                "transcoders must be a set name or a folder under the lenscope workspace "
                f"({roots[0]}) or the shipped assets"
            )
    dics = load_graph_transcoders(state.model, name)
    _CACHE[key] = dics
    return dics


@router.post("/graph", summary="The attribution graph of a prompt")
async def graph(req: GraphRequest, state: ServerState = Depends(get_state)) -> dict[str, Any]:
    """Neuronpedia's graph JSON, with `scores` {replacement, completeness} and `lenscope`."""

    def job() -> dict[str, Any]:
        from lenscope.graphs.api import attribution_graph, summarize
        from lenscope.graphs.build import GraphOptions
        from lenscope.graphs.neuronpedia import to_neuronpedia

        if req.question is not None:
            check_question(req.question)
        ids = prompt_ids(state.model, req.prompt)
        dics = _transcoders(state, req.transcoders)
        run = attribution_graph(
            state.model,
            ids,
            dics,
            question=req.question,
            options=GraphOptions(max_feature_nodes=req.max_feature_nodes),
            node_threshold=req.node_threshold,
            edge_threshold=req.edge_threshold,
        )
        text = req.prompt if isinstance(req.prompt, str) else state.model.to_string(ids)
        doc = to_neuronpedia(
            run.graph, run.pruned, prompt=text, node_threshold=req.node_threshold, heads=run.heads
        )
        if state.records is None:
            for n in doc["nodes"]:
                n.pop("node_page", None)
        s = summarize(run)
        doc["scores"] = run.scores.to_json()
        doc["lenscope"] = {
            "model": s.model,
            "targets": s.targets,
            "active_features": s.active_features,
            "features_in_graph": s.features_in_graph,
            "backward_passes": s.backward_passes,
            "edge_threshold": req.edge_threshold,
            "paths": [p.to_json() for p in s.paths],
        }
        return doc

    return await state.heavy.run(job)


@router.post(
    "/graph/intervene",
    response_model=InterventionResult,
    summary="Edit graph features in the real model",
)
async def graph_intervene(
    req: GraphInterveneRequest, state: ServerState = Depends(get_state)
) -> InterventionResult:
    def job() -> InterventionResult:
        ids = prompt_ids(state.model, req.prompt)
        return intervene(
            state.model, ids, _transcoders(state, req.transcoders), req.edits, req.top_k
        )

    return await state.heavy.run(job)

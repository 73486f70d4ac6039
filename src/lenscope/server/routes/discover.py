"""Circuit discovery for the served model: its shipped tasks and one method's circuit.

GET /api/discover/tasks lists the shipped tasks written for the served model; POST /api/discover
runs one method on one of them (never a file path) and answers the graph view's shape: nodes,
links (the circuit's edges, weighted by score, with the receiving input of a head), the
faithfulness curve and its figures, the method and the ablation. The work is bounded: at most
`MAX_ROWS` rows (`MAX_ROWS_EXACT` for exact patching and ACDC, one forward per edge) and
`MAX_STEPS` integration steps.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lenscope.server.deps import get_state
from lenscope.server.errors import ApiError
from lenscope.server.state import ServerState

router = APIRouter(prefix="/api", tags=["discover"])

MAX_ROWS = 64
MAX_ROWS_EXACT = 16
MAX_STEPS = 20
MAX_EXACT_EDGES = 2000
CURVE_POINTS = 24


class CircuitTaskView(BaseModel):
    name: str
    model: str
    description: str
    n_rows: int
    accuracy: float | None
    mean_logit_diff: float | None


class DiscoverNodeView(BaseModel):
    node_id: str
    layer: int | None = Field(description="embeddings -1, the logits n_layers")
    kind: Literal["embed", "pos", "head", "mlp", "logits"]
    index: int | None = None


class DiscoverLinkView(BaseModel):
    source: str
    target: str
    weight: float = Field(description="the edge's score in units of the task metric")
    receiver: Literal["q", "k", "v"] | None = Field(description="which input of a head")


class DiscoverFaithfulnessView(BaseModel):
    curve: list[tuple[int, float]] = Field(description="[edges kept, fraction of the full model]")
    area: float
    n80: int | None
    n90: int | None
    completeness: float


class DiscoverGraphView(BaseModel):
    nodes: list[DiscoverNodeView]
    links: list[DiscoverLinkView]
    faithfulness: DiscoverFaithfulnessView
    method: str
    ablation: str


class DiscoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=64, description="a shipped task of this model")
    method: Literal["patch", "eap", "eap-ig", "eap-ig-act", "acdc"] = "eap-ig"
    ablation: Literal["zero", "mean", "mean-pos", "resample"] = "resample"
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="EAP-IG steps")
    tau: float | None = Field(None, ge=0.0, le=1e6, description="ACDC's threshold")
    top_n: int | None = Field(None, ge=1, le=100_000, description="edges in the circuit")


@router.get(
    "/discover/tasks", response_model=list[CircuitTaskView], summary="Tasks of the served model"
)
async def discover_tasks(state: ServerState = Depends(get_state)) -> list[CircuitTaskView]:
    """The shipped discovery tasks written for the served model, with its accuracy on each."""
    from lenscope.discover.tasks import list_tasks

    return [
        CircuitTaskView(
            name=t.name,
            model=t.model,
            description=t.description,
            n_rows=t.n_rows,
            accuracy=t.accuracy,
            mean_logit_diff=t.mean_logit_diff,
        )
        for t in list_tasks(state.model.cfg.name)
    ]


@router.post(
    "/discover", response_model=DiscoverGraphView, summary="Discover the circuit of a shipped task"
)
async def discover_route(
    req: DiscoverRequest, state: ServerState = Depends(get_state)
) -> DiscoverGraphView:
    """{nodes, links, faithfulness: {curve, area, n80, n90, completeness}, method, ablation}."""
    from lenscope.discover.api import discover
    from lenscope.discover.graph import EdgeGraph
    from lenscope.discover.tasks import list_tasks, load_task

    model = state.model
    names = [t.name for t in list_tasks(model.cfg.name)]
    if req.task not in names:
        have = ", ".join(names) or "none"
        raise ApiError(
            404,
            f"no shipped task {req.task!r} for {model.cfg.name} (its tasks: {have})",
            "InputError",
        )
    if req.tau is not None and req.method != "acdc":
        raise ApiError(
            400, f"tau is ACDC's threshold; method {req.method} takes none", "InputError"
        )
    exact = req.method in ("patch", "acdc")

    def job() -> DiscoverGraphView:
        if exact and EdgeGraph.of(model.cfg).n_edges > MAX_EXACT_EDGES:
            raise ApiError(
                400,
                f"{model.cfg.name} has more than {MAX_EXACT_EDGES} edges: {req.method} runs one "
                "forward per edge; use eap or eap-ig here, or the CLI",
                "InputError",
            )
        task = load_task(req.task, model)
        res = discover(
            model,
            task,
            req.method,
            req.ablation,
            steps=req.steps or 5,
            tau=req.tau,
            top_n=req.top_n,
            max_rows=MAX_ROWS_EXACT if exact else MAX_ROWS,
            points=CURVE_POINTS,
        )
        return DiscoverGraphView.model_validate(res.graph_view())

    return await state.heavy.run(job)

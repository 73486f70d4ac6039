"""Node pages: records (examples, histogram, output-token effects), explanations generated and
scored on request (cached), a node's activations on the user's text, search and most-active."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from lenscope.errors import InputError, LenscopeError
from lenscope.explain import Explainer, explain_node
from lenscope.model.view import private_view
from lenscope.nodes import NodeId, NodeKind
from lenscope.records import ActiveNode, Explanation, NodeRecord, Records, TokenHit, most_active
from lenscope.records.capture import group_activations
from lenscope.records.config import Group
from lenscope.sae.dictionary import Dictionary
from lenscope.server.config import MAX_NODES_PER_QUERY
from lenscope.server.deps import get_state, prompt_tensor
from lenscope.server.schemas import ActiveRequest, ExplainRequest, TextRequest
from lenscope.server.state import ServerState
from lenscope.server.views import NodeActivations, NodeSummary, SummaryMap

router = APIRouter(prefix="/api", tags=["nodes"])
log = logging.getLogger("lenscope.server")

NodePath = Annotated[
    str, Path(max_length=64, description="a component id: L1.H2, L0.N17, L2.resid_post.F7")
]


def component(state: ServerState, node_id: str, run: bool = True) -> NodeId:
    """A head, neuron or latent of this model (no position), checked; `InputError` otherwise.
    Latents need their SAE loaded only to be `run` (their records can be read without it)."""
    node = NodeId.parse(node_id)
    if node.position is not None:
        raise InputError(f"{node_id}: node pages are per component; drop the @position")
    if node.kind not in (NodeKind.HEAD, NodeKind.NEURON, NodeKind.LATENT):
        raise InputError(f"{node_id}: node pages cover heads, neurons and SAE latents")
    cfg = state.model.cfg
    sizes = {s.hook: s.d_sae for s in state.saes}
    if node.kind is NodeKind.LATENT and not run and node.hook_name not in sizes:
        sizes[node.hook_name] = 1 << 62  # the records say whether it exists
    return node.check(
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_mlp=None if cfg.attn_only else cfg.d_mlp,
        latent_sizes=sizes,
    )


@router.get("/nodes/{node_id}", response_model=NodeRecord, summary="A node's record")
async def node_record(node_id: NodePath, state: ServerState = Depends(get_state)) -> NodeRecord:
    """Top, random and quantile examples, statistics, histogram, output-token effects and every
    explanation of one component (from the server's records)."""

    def job() -> NodeRecord:
        node = component(state, node_id, run=False)
        return state.record(str(node))

    return await state.light.run(job)


@router.post("/nodes/{node_id}/explain", response_model=Explanation, summary="Explain a node")
async def explain(
    node_id: NodePath, req: ExplainRequest, state: ServerState = Depends(get_state)
) -> Explanation:
    """An explanation of the node and its simulation score (correlation of simulated with true
    activations on held-out examples, with a shuffled control); generated once, then cached.
    `explainer: "llm"` needs a server started with `--llm-url`; an LLM endpoint that is down,
    slow or answers garbage gives an explanation with status "failed" and the reason."""
    explainer, lane = state.explainer(req.explainer)

    def lookup() -> Explanation | NodeRecord:
        node = str(component(state, node_id, run=False))
        if not req.refresh:
            cached = state.cached_explanation(node, req.explainer)
            if cached is not None:
                return cached
        rec = state.record(node)
        if not req.refresh:
            for e in rec.explanations:
                if e.explainer == req.explainer:
                    return e
        return rec

    found = await state.light.run(lookup)
    if isinstance(found, Explanation):
        return found
    return await lane.run(make_explanation, state, explainer, found)


def make_explanation(state: ServerState, explainer: Explainer, rec: NodeRecord) -> Explanation:
    """Explain and score; whatever the explainer's endpoint does, the answer is a row (a failed
    one with the reason when it breaks), cached like the others."""
    try:
        made = explain_node(explainer, rec)
    except LenscopeError:
        raise
    except Exception as e:  # an endpoint failure the chat client did not foresee
        log.warning(
            "explaining %s with %s failed: %s: %s", rec.node_id, explainer.name, type(e).__name__, e
        )
        model = getattr(getattr(explainer, "cfg", None), "model", "")
        made = Explanation(
            rec.node_id, explainer.name, "", "failed", None, None, 0,
            f"explaining: {type(e).__name__}: {e}", model,
        )  # fmt: skip
    state.cache_explanation(made)
    return made


@router.post(
    "/nodes/{node_id}/activations",
    response_model=NodeActivations,
    summary="A node's activation on your text",
)
async def activations(
    node_id: NodePath, req: TextRequest, state: ServerState = Depends(get_state)
) -> NodeActivations:
    """Per token: a neuron's activation, a head's write norm (as in its records) with the head's
    attention pattern, or an SAE latent's activation."""
    return await state.heavy.run(node_activations, state, node_id, req.text)


def node_activations(state: ServerState, node_id: str, text: str) -> NodeActivations:
    node = component(state, node_id)
    layer, index = node.layer or 0, node.index or 0
    cfg = state.model.cfg
    saes: list[Any] = []
    if node.kind is NodeKind.NEURON:
        group = Group("g", "neuron", layer, f"blocks.{layer}.mlp.hook_post", cfg.d_mlp)
    elif node.kind is NodeKind.HEAD:
        group = Group("g", "head", layer, f"blocks.{layer}.attn.hook_z", cfg.n_heads)
    else:
        sae = next(s for s in state.saes if s.hook == node.hook_name)
        saes = [Dictionary.of(sae.sae)]
        group = Group("g", "latent", layer, sae.hook, sae.d_sae, 0)
    with private_view(state.model) as view:
        tokens = prompt_tensor(view, text)
        acts = group_activations(view, [group], saes, tokens)["g"][0, :, index]
        pattern = None
        if node.kind is NodeKind.HEAD:
            name = f"blocks.{layer}.attn.hook_pattern"
            _, cache = view.run_with_cache(tokens, names_filter=[name], stop_at_layer=layer + 1)
            pattern = cache[name][0, index].float().tolist()
        ids = tokens[0].tolist()
        strs = view.to_str_tokens(tokens[0]) if view.tokenizer else [f"#{i}" for i in ids]
    top = None
    if state.records is not None:
        maxima = state.memo("maxima", lambda: state.with_records(lambda r: r.maxima()))
        top = maxima.get(str(node))
    return NodeActivations(
        node=str(node),
        kind=node.kind.value,
        ids=ids,
        tokens=list(strs),
        acts=acts.float().tolist(),
        max_over_records=top,
        pattern=pattern,
    )


@router.get("/summaries", response_model=SummaryMap, summary="Explanations of many nodes")
async def summaries(
    nodes: Annotated[str, Query(max_length=4096, description="comma-separated node ids")],
    state: ServerState = Depends(get_state),
) -> SummaryMap:
    """For each listed node (positions are dropped) that the records cover: its best-scoring
    explanation, its top-activating tokens and the output tokens it boosts; what the debugger
    shows beside its node table. Nodes without records are left out."""

    def job() -> SummaryMap:
        ids = [n.strip() for n in nodes.split(",") if n.strip()]
        if len(ids) > MAX_NODES_PER_QUERY:
            raise InputError(f"at most {MAX_NODES_PER_QUERY} nodes at once, got {len(ids)}")
        comps = [str(NodeId.parse(i).component) for i in ids]
        if state.records is None:
            return SummaryMap(nodes={})
        stored = state.memo("explanations", lambda: _explanations_by_node(state))
        tokens = state.memo("node_tokens", lambda: _tokens_by_node(state))
        out: dict[str, NodeSummary] = {}
        for node in comps:
            if node not in tokens:
                continue
            cands = stored.get(node, []) + state.cached_explanations(node)
            scored = [e for e in cands if e.status == "ok"]
            best = max(scored, key=lambda e: -1e9 if e.score is None else e.score, default=None)
            top, boosts = tokens[node]
            out[node] = NodeSummary(node=node, explanation=best, top_tokens=top, boosts=boosts)
        return SummaryMap(nodes=out)

    return await state.light.run(job)


def _explanations_by_node(state: ServerState) -> dict[str, list[Explanation]]:
    out: dict[str, list[Explanation]] = {}
    for e in state.with_records(lambda r: r.explanations()):
        out.setdefault(e.node_id, []).append(e)
    return out


def _tokens_by_node(state: ServerState) -> dict[str, tuple[list[str], list[str]]]:
    """Each recorded node's distinct top-activating tokens and boosted tokens (first 6)."""

    def read(r: Records) -> list[tuple[Any, ...]]:
        return r.con.execute("SELECT node_id, top_tokens, boost_tokens FROM nodes").fetchall()

    def distinct(xs: list[str] | None) -> list[str]:
        return list(dict.fromkeys(xs or []))[:6]

    return {n: (distinct(t), distinct(b)) for n, t, b in state.with_records(read)}


@router.get("/search", response_model=list[TokenHit], summary="Nodes by token")
async def search(
    token: Annotated[str, Query(min_length=1, max_length=100)],
    where: Annotated[str, Query(pattern="^(top|boost|suppress)$")] = "top",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    state: ServerState = Depends(get_state),
) -> list[TokenHit]:
    """Nodes whose top-activating tokens (or boosted / suppressed output tokens) include `token`."""
    return await state.light.run(state.with_records, lambda r: r.search_tokens(token, where, limit))


@router.post("/active", response_model=list[ActiveNode], summary="Nodes most active on a text")
async def active(req: ActiveRequest, state: ServerState = Depends(get_state)) -> list[ActiveNode]:
    """Nodes ranked by their maximum activation on the text relative to their maximum over the
    records (as TDB's neuron viewer does)."""

    def job() -> list[ActiveNode]:
        sources = [s.sae for s in state.saes]
        tokens = prompt_tensor(state.model, req.text)
        # most_active runs on a private view of the model
        return state.with_records(lambda r: most_active(r, state.model, tokens, sources, req.limit))

    return await state.heavy.run(job)

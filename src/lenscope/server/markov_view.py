"""The Markov page's data: a tiny model's chain (states, probabilities, classes) and its graph as
SVG drawn by graphviz (when installed; the DOT text is always there)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lenscope.errors import InputError
from lenscope.markov import (
    EmpiricalTransitions,
    GraphvizError,
    MarkovChain,
    empirical_transitions,
    render,
    to_dot,
    transition_matrix,
)
from lenscope.markov.graph import MAX_DRAWN_STATES
from lenscope.markov.states import check_size, parse_token_text
from lenscope.server.schemas import BabyRequest
from lenscope.server.state import ServerState


class ClassView(BaseModel):
    states: list[str]
    kind: str
    period: int | None
    stationary: list[float] | None


class ChainView(BaseModel):
    title: str
    V: int
    C: int
    states: list[str]
    next_token_probs: list[list[float]]
    next_state: list[list[str]]
    classes: list[ClassView]
    stationary: list[float] | None
    seen: list[bool] | None = None
    dot: str
    svg: str | None
    svg_note: str = ""


class MarkovView(BaseModel):
    model: str
    chains: list[ChainView]
    sequence: list[int] | None = None
    steps: int | None = None
    loss_first: float | None = None
    loss_final: float | None = None
    n_params: int | None = None
    note: str = ""


def chain_view(
    chain: MarkovChain, title: str, empirical: EmpiricalTransitions | None, threshold: float
) -> ChainView:
    dot = to_dot(chain, empirical, threshold=threshold, name=title)
    svg, note = None, ""
    if len(chain.states) > MAX_DRAWN_STATES:
        note = f"{len(chain.states)} states are too many to draw (limit {MAX_DRAWN_STATES})"
    else:
        try:
            with tempfile.TemporaryDirectory(prefix="lenscope-markov-") as tmp:
                (path,) = render(dot, Path(tmp) / "graph", formats=("svg",), timeout=20.0)
                svg = path.read_text("utf-8")
        except GraphvizError as e:
            note = str(e)
    js: dict[str, Any] = chain.to_json()
    return ChainView(
        title=title,
        V=chain.V,
        C=chain.C,
        states=js["states"],
        next_token_probs=js["next_token_probs"],
        next_state=js["next_state"],
        classes=[ClassView(**c) for c in js["classes"]],
        stationary=js["stationary"],
        seen=None if empirical is None else [bool(s) for s in empirical.seen],
        dot=dot,
        svg=svg,
        svg_note=note,
    )


def served_chain(state: ServerState, threshold: float) -> MarkovView:
    """The served model as a chain over its whole context (refused when V^C is too large)."""
    cfg = state.model.cfg
    check_size(cfg.d_vocab, cfg.n_ctx)

    def make() -> MarkovChain:  # runs on a private view of the model
        return transition_matrix(state.model, cfg.d_vocab, cfg.n_ctx)

    chain = state.memo("markov", make)
    return MarkovView(model=cfg.name, chains=[chain_view(chain, cfg.name, None, threshold)])


def baby_chain(req: BabyRequest) -> MarkovView:
    """Train the baby GPT on `req.sequence` and show its chain at random init and trained."""
    from lenscope.train.baby import BabySettings, train_baby

    tokens = parse_token_text(req.sequence)
    V = req.vocab if req.vocab is not None else max(2, max(tokens) + 1)
    C = req.context
    check_size(V, C)
    if max(tokens) >= V:
        raise InputError(f"token {max(tokens)} is outside the vocabulary of {V}; raise vocab")
    if len(tokens) <= C:
        raise InputError(
            f"the sequence has {len(tokens)} tokens; training needs more than the context of {C}"
        )
    empirical = empirical_transitions(tokens, V, C)
    run = train_baby(tokens, BabySettings(vocab=V, context=C, steps=req.steps, seed=req.seed))
    initial = transition_matrix(run.initial, V, C)
    trained = transition_matrix(run.model, V, C)
    return MarkovView(
        model="baby-gpt",
        chains=[
            chain_view(initial, "random init", empirical, req.threshold),
            chain_view(trained, f"after {req.steps} steps", empirical, req.threshold),
        ],
        sequence=tokens,
        steps=req.steps,
        loss_first=run.losses[0] if run.losses else None,
        loss_final=run.final_loss,
        n_params=sum(p.numel() for p in run.model.parameters()),
    )

"""The circuits page's data: `circuit_report` as JSON, and OV/QK/bigram top-token tables."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, Field

from lenscope.attribution.questions import resolve_token
from lenscope.circuits import (
    CircuitReport,
    TokenTable,
    circuit_report,
    circuit_weights,
    token_table,
)
from lenscope.circuits.tables import token_labeler
from lenscope.data.repeated import repeated_tokens
from lenscope.errors import InputError
from lenscope.nodes import NodeId, NodeKind
from lenscope.server.state import ServerState

Grid = list[list[float | None]]


class CompositionView(BaseModel):
    mode: str
    baseline: float
    scores: Grid = Field(
        description="[source head][target head], heads numbered layer * n_heads + head; null "
        "unless the source is in an earlier layer"
    )


class HeadScoresView(BaseModel):
    previous_token: list[list[float]]
    duplicate_token: list[list[float]]
    induction: list[list[float]]
    copying: list[list[float]]
    loss_first_half: float
    loss_repeat_half: float


class HeadValue(BaseModel):
    head: str
    score: float


class InductionPairView(BaseModel):
    induction_head: str
    induction_score: float
    previous_token_head: str
    previous_token_score: float
    k_composition: float


class ScoreRow(BaseModel):
    token: int
    text: str
    score: float


class TopRowView(BaseModel):
    token: int
    text: str
    top: list[ScoreRow]
    bottom: list[ScoreRow]


class TokenTableView(BaseModel):
    kind: str
    head: str | None
    description: str
    layernorm: str
    rows: list[TopRowView]


class CircuitsView(BaseModel):
    model: str
    summary: str
    layernorm: str
    notes: list[str]
    n_layers: int
    n_heads: int
    composition: list[CompositionView]
    scores: HeadScoresView
    induction_heads: list[HeadValue]
    previous_token_heads: list[HeadValue]
    pairs: list[InductionPairView]
    pattern_tokens: list[str]
    patterns: list[list[list[list[float]]]] = Field(description="[layer][head][query][key]")
    tables: list[TokenTableView]


def _grid(t: torch.Tensor) -> Grid:
    L, H = t.shape[:2]
    flat = t.reshape(L * H, L * H).tolist()
    return [[v if math.isfinite(v) else None for v in row] for row in flat]


def table_view(t: TokenTable) -> TokenTableView:
    return TokenTableView.model_validate(t.to_json())


def report_view(state: ServerState) -> CircuitsView:
    def make() -> CircuitsView:
        rep = circuit_report(state.model)  # runs on a private view of the model
        ids = repeated_tokens(state.model, rep.pattern_seq_len, 1, seed=1)[0].tolist()
        label = token_labeler(state.model)
        return _view(rep, [label(i) for i in ids])

    return state.memo("circuits", make)


def _view(rep: CircuitReport, tokens: list[str]) -> CircuitsView:
    sc = rep.induction.scores
    L, H = rep.copying.scores.shape
    return CircuitsView(
        model=rep.model,
        summary=rep.summary,
        layernorm=rep.layernorm,
        notes=rep.notes,
        n_layers=L,
        n_heads=H,
        composition=[
            CompositionView(mode=c.mode, baseline=c.baseline, scores=_grid(c.scores))
            for c in rep.composition
        ],
        scores=HeadScoresView(
            previous_token=sc.previous_token,
            duplicate_token=sc.duplicate_token,
            induction=sc.induction,
            copying=rep.copying.scores.tolist(),
            loss_first_half=sc.loss_first_half,
            loss_repeat_half=sc.loss_repeat_half,
        ),
        induction_heads=[HeadValue(head=h, score=s) for h, s in rep.induction.induction_heads],
        previous_token_heads=[
            HeadValue(head=h, score=s) for h, s in rep.induction.previous_token_heads
        ],
        pairs=[InductionPairView(**vars(p)) for p in rep.induction.pairs],
        pattern_tokens=tokens,
        patterns=rep.patterns.tolist(),
        tables=[table_view(t) for t in rep.tables],
    )


def head_table(
    state: ServerState,
    kind: Literal["bigram", "ov", "qk"],
    head: str | None,
    tokens: list[str],
    k: int,
    n_rows: int,
) -> TokenTableView:
    """Top entries of the bigram table or a head's full OV / QK circuit for some rows."""
    model = state.model
    layer = index = None
    if kind != "bigram":
        if head is None:
            raise InputError(f"the {kind} circuit belongs to a head; give head=L1.H2")
        node = NodeId.parse(head)
        if node.kind is not NodeKind.HEAD or node.position is not None:
            raise InputError(f"{head!r} is not a head; give a head id such as L1.H2")
        node.check(n_layers=model.cfg.n_layers, n_heads=model.cfg.n_heads, d_mlp=model.cfg.d_mlp)
        layer, index = node.layer, node.index
    ids = [resolve_token(model, t).id for t in tokens] or None
    cw = state.memo("circuit_weights", lambda: circuit_weights(model))
    label = token_labeler(model)
    return table_view(
        token_table(cw, kind, layer, index, tokens=ids, k=k, n_rows=n_rows, label=label)
    )

"""Result types of the debugger engine: plain dataclasses, JSON-ready, rendered by every face.

Effects are in units of the question's value (logits for logit questions). Signs: an effect is
what the node *contributes*, so `ablation_effect = value - value with the node ablated`, directly
comparable with `total_effect` (activation x gradient, its first-order estimate) and
`direct_effect` (the node's write read straight through the frozen final normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, Field

from lenscope.attribution.questions import Question, TokenInfo
from lenscope.interventions.spec import InterventionSet
from lenscope.jsonable import JsonResult
from lenscope.nodes import Granularity, NodeId, NodeIdStr, NodeKind

Column = Literal["activation", "write_norm", "direct_effect", "total_effect", "ablation_effect"]
COLUMN_NAMES: dict[str, Column] = {
    "activation": "activation",
    "write_norm": "write_norm",
    "read": "direct_effect",
    "total": "total_effect",
}


class _NodeFields(TypedDict):
    """The columns every row type (node table, side, comparison, edge) takes from its node id."""

    node: str
    component: str
    kind: NodeKind
    granularity: Granularity
    layer: int | None
    index: int | None
    position: int | None
    key_position: int | None


def node_fields(node: NodeId) -> _NodeFields:
    """A row's node columns: the id with and without positions, and its parts."""
    return _NodeFields(
        node=str(node),
        component=str(node.component),
        kind=node.kind,
        granularity=node.granularity,
        layer=node.layer,
        index=node.index,
        position=node.position,
        key_position=node.key_position,
    )


def token_at(tokens: list[str], position: int | None) -> str | None:
    """The token at a row's position, or None where the row has none (or the prompt is shorter)."""
    return tokens[position] if position is not None and position < len(tokens) else None


@dataclass(kw_only=True)
class NodeColumns(JsonResult):
    """The leading columns of every row type keyed by a node (tables, sides, comparisons, edges)."""

    node: str  # canonical id with positions, e.g. "L1.H2@14:7"
    component: str  # the id without positions, e.g. "L1.H2"
    kind: NodeKind
    granularity: Granularity
    layer: int | None = None
    index: int | None = None


@dataclass(kw_only=True)
class NodeRow(NodeColumns):
    site: str | None = None
    position: int | None = None  # for heads: the query position
    key_position: int | None = None
    token: str | None = None
    key_token: str | None = None
    activation: float | None = None  # components: at the answer position
    write_norm: float | None = None  # components: at the answer position
    direct_effect: float = 0.0
    total_effect: float = 0.0
    ablation_effect: float | None = None  # measured for the top rows only


@dataclass(kw_only=True)
class Ranking(JsonResult):
    """Node ids (keys of the table's rows) with the largest positive and negative values."""

    granularity: Granularity
    column: Column
    positive: list[str]
    negative: list[str]


@dataclass(kw_only=True)
class KindSum(JsonResult):
    kind: NodeKind
    direct_effect: float
    total_effect: float


@dataclass(kw_only=True)
class Term(JsonResult):
    """A part of the direct decomposition that is no node (a bias; an SAE's bias and error)."""

    name: str
    value: float


@dataclass(kw_only=True)
class TokenRow(JsonResult):
    """Which input tokens matter: total effects (activation x gradient) summed at one position."""

    position: int
    token: str
    embed: float  # the token embedding
    pos_embed: float | None  # the position embedding (learned positions only)
    heads_query: float  # heads at this position (as the query)
    heads_key: float  # what heads moved *from* this position (token pairs with this key)
    neurons: float
    latents: float


@dataclass(kw_only=True)
class NodeTable(JsonResult):
    rows: list[NodeRow]
    rankings: list[Ranking]
    sums: list[KindSum]
    terms: list[Term]
    direct_total: Annotated[
        float,
        Field(
            description="sum of every model node's direct effect plus the terms (SAE views "
            "excluded); equals the value for logit and logit-difference questions"
        ),
    ]
    ablation: Literal["zero", "mean"] = "zero"

    def row(self, node: str) -> NodeRow:
        for r in self.rows:
            if r.node == node:
                return r
        raise KeyError(node)

    def top(
        self,
        column: Column = "total_effect",
        granularity: Granularity = "position",
        sign: Literal["positive", "negative"] = "positive",
    ) -> list[NodeRow]:
        for rk in self.rankings:
            if rk.column == column and rk.granularity == granularity:
                return [self.row(n) for n in getattr(rk, sign)]
        return []


@dataclass(kw_only=True)
class Candidate(JsonResult):
    token: str
    id: int
    logit: float
    prob: float


@dataclass(kw_only=True)
class PromptInfo(JsonResult):
    ids: list[int]
    tokens: list[str]


@dataclass(kw_only=True)
class WhyResult(JsonResult):
    model: str
    question: Question
    description: str
    prompt: PromptInfo
    targets: list[TokenInfo]
    distractors: list[TokenInfo]
    answer_position: int
    key_position: int | None = None
    value: float
    candidates: list[Candidate]
    table: NodeTable
    tokens: list[TokenRow]
    interventions: InterventionSet | None = None
    sae_hooks: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """Inline in notebooks: value, candidates, coloured prompt, top components."""
        from lenscope.viz.why_html import why_html

        return why_html(self)


# ---- tracing ------------------------------------------------------------------------------------
class Hop(BaseModel):
    """One node of a trace path, for heads optionally through one input (`via`: q, k or v)."""

    node: NodeIdStr
    via: Literal["q", "k", "v"] | None = None

    @classmethod
    def parse(cls, text: str) -> Hop:
        """`L1.H2`, `L1.H2@5:k` (through its key), `L0.N7@3`..."""
        s = text.strip()
        for v in ("q", "k", "v"):
            if s.lower().endswith(":" + v):
                return cls(node=str(NodeId.parse(s[: -len(v) - 1])), via=v)
        return cls(node=str(NodeId.parse(s)))

    def __str__(self) -> str:
        return self.node + (f":{self.via}" if self.via else "")


@dataclass(kw_only=True)
class EdgeRow(NodeColumns):
    site: str | None = None
    position: int | None = None
    key_position: int | None = None
    token: str | None = None
    key_token: str | None = None
    edge: float
    via_q: float | None = None
    via_k: float | None = None
    via_v: float | None = None


@dataclass(kw_only=True)
class EdgeRanking(JsonResult):
    granularity: Granularity
    column: Literal["edge", "via_q", "via_k", "via_v"]
    positive: list[str]
    negative: list[str]


@dataclass(kw_only=True)
class EdgeSum(JsonResult):
    kind: NodeKind
    edge: float


@dataclass(kw_only=True)
class LogitChange(JsonResult):
    """How much a node's write moves one output token's logit (downstream traces)."""

    token: str
    id: int
    logit_change: float


@dataclass(kw_only=True)
class TraceResult(JsonResult):
    """Upstream: the writers feeding the traced node's input (edges), restricted to the path.
    Downstream: the later readers of the node's write, and the output tokens it pushes."""

    model: str
    description: str
    value: float
    prompt: PromptInfo
    direction: Literal["upstream", "downstream"]
    path: list[Hop]
    node: str
    rows: list[EdgeRow]
    rankings: list[EdgeRanking]
    sums: list[EdgeSum]
    terms: list[Term] = field(default_factory=list)
    edge_total: Annotated[
        float, Field(description="upstream: sum of all model writers' edges and the bias terms")
    ]
    direct_effect: float | None = None  # downstream: the node's direct effect on the question
    output_position: int | None = None
    promoted: list[LogitChange] = field(default_factory=list)
    suppressed: list[LogitChange] = field(default_factory=list)

"""Two-prompt comparison: the same question on two prompts (or one prompt under two intervention
sets); every column on the left, on the right, and right minus left, ranked by the difference.
Positions line up by index; position rows exist up to the shorter prompt's length."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import COLUMNS, Chunk, writer_chunks
from lenscope.attribution.measure import measure_ablations
from lenscope.attribution.ranking import Ranker, component_of
from lenscope.attribution.reads import combined, question_reads
from lenscope.attribution.results import (
    COLUMN_NAMES,
    Candidate,
    Column,
    NodeColumns,
    PromptInfo,
    Ranking,
    node_fields,
    token_at,
)
from lenscope.attribution.table import str_tokens
from lenscope.interventions.plan import Plan
from lenscope.interventions.spec import InterventionSet, Prompt
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId
from lenscope.sae.dictionary import Dictionary


class Side(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: Prompt
    interventions: InterventionSet | None = None


@dataclass(kw_only=True)
class Cell(JsonResult):
    left: float | None = None
    right: float | None = None
    diff: float | None = None


@dataclass(kw_only=True)
class CompareRow(NodeColumns):
    position: int | None = None
    key_position: int | None = None
    left_token: str | None = None
    right_token: str | None = None
    activation: Cell
    write_norm: Cell
    direct_effect: Cell
    total_effect: Cell
    ablation_effect: Cell | None = None


@dataclass(kw_only=True)
class SideSummary(JsonResult):
    prompt: PromptInfo
    value: float
    candidates: list[Candidate]
    interventions: InterventionSet | None = None


@dataclass(kw_only=True)
class Comparison(JsonResult):
    model: str
    description: str
    left: SideSummary
    right: SideSummary
    value_diff: float  # right - left
    rows: list[CompareRow]
    rankings: list[Ranking]  # by right - left, per column and granularity


def _narrow(t: Chunk, n: int) -> Chunk:
    dims = (2, 3) if t.granularity == "pair" else (1,)
    cols = {}
    for c, v in t.cols.items():
        for d in dims:
            v = v.narrow(d, 0, min(n, v.shape[d]))
        cols[c] = v
    return Chunk(t.kind, t.layer, t.site, t.granularity, cols, t.hook)


def _merge(a: Chunk, b: Chunk) -> Chunk:
    cols = {}
    for c in COLUMNS:
        cols[f"l:{c}"], cols[f"r:{c}"] = a.cols[c], b.cols[c]
        cols[f"d:{c}"] = b.cols[c] - a.cols[c]
    return Chunk(a.kind, a.layer, a.site, a.granularity, cols, a.hook)


def paired_chunks(left: Capture, right: Capture) -> Iterator[Chunk]:
    n = min(left.batch.lengths[0], right.batch.lengths[0])
    ra = combined(*question_reads(left))
    rb = combined(*question_reads(right))
    for a, b in zip(writer_chunks(left, ra), writer_chunks(right, rb), strict=True):
        if a.granularity == "position":
            yield _merge(component_of(a, left.answer), component_of(b, right.answer))
        yield _merge(_narrow(a, n), _narrow(b, n))


def compare_rows(
    left: Capture,
    right: Capture,
    top_k: int,
) -> tuple[list[CompareRow], list[Ranking]]:
    ranked = tuple(f"d:{c}" for c in COLUMNS)
    carry = tuple(f"{s}:{c}" for s in "lr" for c in COLUMNS)
    ranker = Ranker(left, top_k, columns=ranked, carry=carry, token_col="")
    for chunk in paired_chunks(left, right):
        ranker.feed(chunk, with_component=False)
    chosen, raw, values = ranker.rankings(0)
    toks = [
        str_tokens(c.model, c.batch.tokens[0, : c.batch.lengths[0]].tolist()) for c in (left, right)
    ]
    rows = [_row(nd, values[nd], toks[0], toks[1]) for nd in chosen]
    ranks = [
        Ranking(granularity=g, column=COLUMN_NAMES[c[2:]], positive=p, negative=q)
        for g, c, p, q in raw
    ]
    return rows, ranks


def measure_both(
    views: tuple[HookedTransformer, HookedTransformer],
    caps: tuple[Capture, Capture],
    plans: tuple[Plan, Plan],
    latents: Mapping[str, Dictionary],
    rows: list[CompareRow],
    ranks: list[Ranking],
    measure: int,
) -> None:
    picked: list[CompareRow] = []
    for gran in ("component", "position", "pair"):
        same = [r for r in rows if r.granularity == gran]
        same.sort(key=lambda r: -abs(r.total_effect.diff or 0.0))
        picked += same[:measure]
    nodes = [NodeId.parse(r.node) for r in picked]
    eff = [
        measure_ablations(v, c, 0, nodes, p, latents)
        for v, c, p in zip(views, caps, plans, strict=True)
    ]
    for r, nd in zip(picked, nodes, strict=True):
        a, b = eff[0][nd], eff[1][nd]
        r.ablation_effect = Cell(left=a, right=b, diff=b - a)
    for gran in ("component", "position", "pair"):
        done = [r for r in picked if r.granularity == gran and r.ablation_effect is not None]
        diffs = [
            (r.node, (r.ablation_effect.diff or 0.0) if r.ablation_effect else 0.0) for r in done
        ]
        ranks.append(
            Ranking(
                granularity=gran,  # type: ignore[arg-type]
                column="ablation_effect",
                positive=[n for n, d in sorted(diffs, key=lambda x: -x[1]) if d > 0],
                negative=[n for n, d in sorted(diffs, key=lambda x: x[1]) if d < 0],
            )
        )


def _row(node: NodeId, v: dict[str, float], lt: list[str], rt: list[str]) -> CompareRow:
    def cell(c: str) -> Cell:
        return Cell(left=v.get(f"l:{c}"), right=v.get(f"r:{c}"), diff=v.get(f"d:{c}"))

    col: dict[str, Column] = COLUMN_NAMES
    return CompareRow(
        **node_fields(node),
        left_token=token_at(lt, node.position),
        right_token=token_at(rt, node.position),
        **{col[c]: cell(c) for c in COLUMNS},
    )

"""The node table: every node's columns from one capture, top-k rows, measured ablations, sums."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import bias_terms, is_view_term, writer_chunks
from lenscope.attribution.measure import measure_ablations
from lenscope.attribution.ranking import Ranker, make_row
from lenscope.attribution.reads import combined, question_reads
from lenscope.attribution.results import COLUMN_NAMES, NodeRow, NodeTable, Ranking, Term, TokenRow
from lenscope.interventions.plan import Plan
from lenscope.interventions.spec import Prompt
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId, NodeKind
from lenscope.sae.dictionary import Dictionary


def str_tokens(model: HookedTransformer, ids: list[int]) -> list[str]:
    if model.tokenizer is None:
        return [f"#{i}" for i in ids]
    return model.tokenizer.str_tokens(ids)


def node_tables(
    view: HookedTransformer,
    cap: Capture,
    plan: Plan,
    latents: Mapping[str, Dictionary],
    *,
    top_k: int = 10,
    measure: int = 8,
    ablation: Literal["zero", "mean"] = "zero",
    reference: Sequence[Prompt] | None = None,
) -> list[tuple[NodeTable, list[TokenRow]]]:
    """One (table, token view) per prompt of the capture. `measure` rows per granularity (the
    largest |total effect|) are re-run ablated; 0 measures nothing."""
    q_read, k_read = question_reads(cap)
    read = combined(q_read, k_read)
    ranker = Ranker(cap, top_k)
    for chunk in writer_chunks(cap, read, full=True):
        ranker.feed(chunk)
    terms = {**bias_terms(cap, read), **read.terms}
    out = []
    for b in range(cap.batch.size):
        n = cap.batch.lengths[b]
        tokens = str_tokens(view, cap.batch.tokens[b, :n].tolist())
        chosen, raw, values = ranker.rankings(b)
        rows = [make_row(node, values[node], tokens) for node in chosen]
        ranks = [
            Ranking(granularity=g, column=COLUMN_NAMES[c], positive=p, negative=q)
            for g, c, p, q in raw
        ]
        if measure > 0:
            _measure(view, cap, b, plan, latents, rows, ranks, measure, ablation, reference)
        sums = ranker.sums(b)
        term_list = [Term(name=k, value=float(v[b])) for k, v in terms.items()]
        direct_total = sum(s.direct_effect for s in sums if s.kind is not NodeKind.LATENT) + sum(
            t.value for t in term_list if not is_view_term(t.name)
        )
        table = NodeTable(
            rows=rows,
            rankings=ranks,
            sums=sums,
            terms=term_list,
            direct_total=direct_total,
            ablation=ablation,
        )
        out.append((table, ranker.token_rows(b, tokens)))
    return out


def _measure(
    view: HookedTransformer,
    cap: Capture,
    b: int,
    plan: Plan,
    latents: Mapping[str, Dictionary],
    rows: list[NodeRow],
    ranks: list[Ranking],
    measure: int,
    ablation: Literal["zero", "mean"],
    reference: Sequence[Prompt] | None,
) -> None:
    picked: list[NodeRow] = []
    for gran in ("component", "position", "pair"):
        same = [r for r in rows if r.granularity == gran]
        if ablation == "mean":
            same = [r for r in same if gran != "pair"]
        same.sort(key=lambda r: -abs(r.total_effect))
        picked += same[:measure]
    nodes = [NodeId.parse(r.node) for r in picked]
    effects = measure_ablations(view, cap, b, nodes, plan, latents, ablation, reference)
    for r in picked:
        r.ablation_effect = effects[NodeId.parse(r.node)]
    for gran in ("component", "position", "pair"):
        done = [r for r in picked if r.granularity == gran and r.ablation_effect is not None]
        pos = sorted(
            (r for r in done if (r.ablation_effect or 0) > 0),
            key=lambda r: -(r.ablation_effect or 0),
        )
        neg = sorted(
            (r for r in done if (r.ablation_effect or 0) < 0), key=lambda r: r.ablation_effect or 0
        )
        ranks.append(
            Ranking(
                granularity=gran,  # type: ignore[arg-type]
                column="ablation_effect",
                positive=[r.node for r in pos],
                negative=[r.node for r in neg],
            )
        )

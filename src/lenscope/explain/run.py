"""Explain and score many nodes; results land beside the records, failures included.

Each node is explained, simulated and scored on its own: an explainer failure (endpoint down,
slow, garbage) becomes a row with status "failed" and the reason, and the run goes on. Rows are
written even when the run is interrupted, merged with the explainer's earlier rows for other
nodes, so no finished explanation is ever lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lenscope.errors import InputError
from lenscope.explain.base import Explainer, ExplainFailure, score_simulation, split_examples
from lenscope.jsonable import JsonResult
from lenscope.records.explanations import read_explanations, write_explanations
from lenscope.records.results import Explanation, NodeRecord
from lenscope.records.store import Records

BATCH = 256


@dataclass
class ExplainSummary(JsonResult):
    explainer: str
    label: str
    path: Path
    nodes: int
    ok: int
    failed: int
    mean_score: float | None
    mean_control: float | None
    seconds: float
    first_error: str = ""


def explain_node(explainer: Explainer, record: NodeRecord, seed: int = 0) -> Explanation:
    """Explain one node and score the explanation; failures come back as a failed row."""
    model = getattr(getattr(explainer, "cfg", None), "model", "")

    def row(
        text: str,
        status: str,
        error: str = "",
        score: float | None = None,
        control: float | None = None,
        n: int = 0,
    ) -> Explanation:
        return Explanation(
            record.node_id, explainer.name, text, status, score, control, n, error, model
        )

    split = split_examples(record)
    if not split.explain or not split.heldout:
        return row("", "failed", "too few examples in the record to explain and score")
    try:
        text = explainer.explain(record, split.explain)
    except ExplainFailure as e:
        return row("", "failed", f"explaining: {e}")
    try:
        sim = explainer.simulate(record, text, split.heldout)
        sc = score_simulation(split.heldout, sim, seed)
    except ExplainFailure as e:
        return row(text, "failed", f"simulating: {e}")
    return row(text, "ok", score=sc.score, control=sc.control, n=sc.n_tokens)


def explain_records(
    records: Records,
    explainer: Explainer,
    node_ids: Sequence[str] | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
) -> ExplainSummary:
    """Explain `node_ids` (default: every node) and write the explainer's table."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    ids = list(node_ids) if node_ids is not None else records.node_ids()
    if not ids:
        raise InputError("no nodes to explain")
    known = set(records.node_ids())
    bad = [i for i in ids if i not in known]
    if bad:
        records.node(bad[0])  # raises the clear InputError (malformed or not in the records)
    rows: list[Explanation] = []
    t0 = time.perf_counter()
    cols = (
        TextColumn(f"explain ({explainer.name})"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} nodes"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*cols, console=Console(stderr=True), disable=not progress) as bar:
            task = bar.add_task("explain", total=len(ids))
            order = sorted(ids)
            for i in range(0, len(order), BATCH):
                for rec in records.nodes(order[i : i + BATCH]):
                    rows.append(explain_node(explainer, rec, seed))
                    bar.advance(task)
    finally:
        if rows:
            merged = read_explanations(records.path, explainer.name)
            merged.update({r.node_id: r for r in rows})
            write_explanations(
                records.path,
                explainer.name,
                list(merged.values()),
                {
                    "explainer": explainer.name,
                    "label": explainer.label,
                    "records_fingerprint": records.fingerprint,
                    "seed": seed,
                },
            )
    ok = [r for r in rows if r.status == "ok"]
    scores = [r.score for r in ok if r.score is not None]
    controls = [r.control for r in ok if r.control is not None]
    failed = [r for r in rows if r.status != "ok"]
    return ExplainSummary(
        explainer.name,
        explainer.label,
        records.path / "explanations" / explainer.name,
        len(rows),
        len(ok),
        len(failed),
        sum(scores) / len(scores) if scores else None,
        sum(controls) / len(controls) if controls else None,
        time.perf_counter() - t0,
        failed[0].error if failed else "",
    )

"""The offline explainer with and without code labels over every node of a records artifact:
the mean simulation score and mean shuffled control of each (one JSON object).

    python benchmarks/explain_code_labels.py RECORDS_DIR [--limit N] [--stride S]

RECORDS_DIR: a records artifact (e.g. `lenscope harvest mini --no-sae --tokens 65536 --out DIR`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

from lenscope.explain import OfflineExplainer, explain_node
from lenscope.records import Records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("records")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--stride", type=int, default=1, help="every S-th node (sorted ids)")
    args = ap.parse_args()
    recs = Records(args.records)
    ids = sorted(recs.node_ids())[:: args.stride][: args.limit]
    arms = {"tokens": OfflineExplainer(labels=False), "tokens+labels": OfflineExplainer()}
    scores: dict[str, list[float]] = defaultdict(list)
    controls: dict[str, list[float]] = defaultdict(list)
    by_kind: dict[str, list[float]] = defaultdict(list)
    labelled = 0
    note: dict[str, dict[str, float | None]] = defaultdict(dict)
    t0 = time.perf_counter()
    for rec in recs.nodes(ids):
        for arm, ex in arms.items():
            x = explain_node(ex, rec)
            if rec.node_id in ("L2.H2", "L0.H0", "L3.N0"):
                note[rec.node_id][arm] = x.score
            if x.status == "ok" and x.score is not None:
                scores[arm].append(x.score)
                by_kind[f"{arm}:{rec.kind}"].append(x.score)
                if x.control is not None:
                    controls[arm].append(x.control)
                if arm == "tokens+labels" and "Code labels" in x.text:
                    labelled += 1

    def mean(v: list[float]) -> float | None:
        return sum(v) / len(v) if v else None

    print(
        json.dumps(
            {
                "records": args.records,
                "nodes": len(ids),
                "of_nodes": len(recs.node_ids()),
                "mean_score": {a: mean(v) for a, v in scores.items()},
                "mean_control": {a: mean(v) for a, v in controls.items()},
                "mean_score_by_kind": {k: mean(v) for k, v in sorted(by_kind.items())},
                "scored": {a: len(v) for a, v in scores.items()},
                "nodes_with_code_labels": labelled,
                "examples": note,
                "seconds": time.perf_counter() - t0,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

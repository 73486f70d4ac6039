"""Explanation tables stored beside records: `<records>/explanations/<explainer>/`.

Each explainer's results are their own small artifact (kind "explanations") holding
`explanations.parquet`: one row per node with the explanation text, status ("ok" / "failed"),
score, shuffled control, held-out token count, error message and the explaining LLM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lenscope.artifacts import Manifest, read_manifest, writing_artifact
from lenscope.errors import ArtifactError, InputError
from lenscope.records.results import Explanation

EXPLANATIONS_KIND = "explanations"
EXPLANATIONS_SCHEMA = 1
FILE = "explanations.parquet"

_SCHEMA = pa.schema(
    [
        ("node_id", pa.string()),
        ("explainer", pa.string()),
        ("text", pa.string()),
        ("status", pa.string()),
        ("score", pa.float64()),
        ("control", pa.float64()),
        ("n_tokens", pa.int64()),
        ("error", pa.string()),
        ("model", pa.string()),
    ]
)


def explanations_dir(records: Path, explainer: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", explainer):
        raise InputError(f"explainer name {explainer!r} must be letters, digits, '_', '.', '-'")
    return Path(records) / "explanations" / explainer


def write_explanations(
    records: Path, explainer: str, rows: Sequence[Explanation], provenance: dict[str, Any]
) -> Path:
    """Write (replace) one explainer's table, rows sorted by node id."""
    dest = explanations_dir(records, explainer)
    ordered = sorted(rows, key=lambda e: e.node_id)
    table = pa.Table.from_pylist([asdict(e) for e in ordered], schema=_SCHEMA)
    m = Manifest(
        EXPLANATIONS_KIND,
        EXPLANATIONS_SCHEMA,
        provenance=provenance,
        data={
            "n_nodes": len(ordered),
            "explainer": explainer,
            "failed": sum(e.status != "ok" for e in ordered),
        },
    )
    with writing_artifact(dest, m) as tmp:
        pq.write_table(table, tmp / FILE, row_group_size=1024)
    return dest


def explanation_tables(records: Path) -> list[Path]:
    """The explanation tables of every explainer run on these records (validated)."""
    root = Path(records) / "explanations"
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            read_manifest(d, EXPLANATIONS_KIND, EXPLANATIONS_SCHEMA)
            if not (d / FILE).is_file():
                raise ArtifactError(f"{d} has no {FILE}; run lenscope explain again")
            out.append(d / FILE)
    return out


def read_explanations(records: Path, explainer: str) -> dict[str, Explanation]:
    """One explainer's explanations by node id ({} when it has not run)."""
    d = explanations_dir(records, explainer)
    if not (d / "manifest.json").is_file():
        return {}
    read_manifest(d, EXPLANATIONS_KIND, EXPLANATIONS_SCHEMA)
    try:
        rows = pq.read_table(d / FILE).to_pylist()
    except (OSError, pa.ArrowException) as e:
        raise ArtifactError(f"{d / FILE} is corrupt ({e}); run lenscope explain again") from None
    return {r["node_id"]: Explanation(**r) for r in rows}

"""Turn merged harvest states into the records artifact: manifest + four Parquet tables.

Tables (schema in docs/records.md): `nodes` (one row per node: statistics, histogram, quantile
bounds, top tokens, output-token effects), `examples` (one row per kept example: its node, set,
activation on every token of its window, attention for heads), `windows` (the tokens of every
window, by centre position) and `vocab` (token strings). Examples are sorted by node id in small
row groups, so DuckDB reads one node's rows without scanning the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lenscope.artifacts import Manifest, read_manifest, writing_artifact
from lenscope.errors import ArtifactError
from lenscope.model import HookedTransformer
from lenscope.model.layers import Block
from lenscope.records.config import (
    RECORDS_KIND,
    SCHEMA_VERSION,
    Group,
    HarvestConfig,
)
from lenscope.records.corpus import Corpus
from lenscope.records.effects import Effects, direction_effects, head_effects
from lenscope.records.select import EMPTY, sort_slots
from lenscope.records.state import Calibration, GroupState, SharedState
from lenscope.records.tables import examples_table, group_examples, nodes_table, windows_table
from lenscope.sae.dictionary import Dictionary

ROW_GROUP_NODES = 64
F32 = npt.NDArray[np.float32]


def existing_identity(dest: Path) -> Any:
    try:
        return read_manifest(dest, RECORDS_KIND, SCHEMA_VERSION).provenance.get("identity")
    except ArtifactError:
        return None


def vocab_strings(model: HookedTransformer) -> list[str]:
    v = model.cfg.d_vocab
    if model.tokenizer is None:
        return [f"<{i}>" for i in range(v)]
    tok = model.tokenizer
    return [tok.token_str(i) if i < tok.vocab_size else f"<{i}>" for i in range(v)]


def moments(st: GroupState, cal: Calibration, n_tokens: int) -> dict[str, npt.NDArray[np.float64]]:
    """Mean, (population) variance, skewness and excess kurtosis from the exact power sums."""
    p = st.power_sums(n_tokens)
    m1 = p[0]
    mu2 = np.maximum(p[1] - m1**2, 0.0)
    mu3 = p[2] - 3 * m1 * p[1] + 2 * m1**3
    mu4 = p[3] - 4 * m1 * p[2] + 6 * m1**2 * p[1] - 3 * m1**4
    ok = mu2 > 1e-20
    safe = np.where(ok, mu2, 1.0)
    return {
        "mean": cal.shift.double().cpu().numpy() + m1,
        "var": mu2,
        "skew": np.where(ok, mu3 / safe**1.5, np.nan),
        "kurtosis": np.where(ok, mu4 / safe**2 - 3.0, np.nan),
    }


def _no_effects(n: int, head: bool) -> Effects:
    e = torch.zeros((n, 0), dtype=torch.long)
    v = torch.zeros((n, 0))
    return Effects(e, v, e, v, e if head else None, e if head else None)


def _effects(
    model: HookedTransformer, g: Group, saes: list[Dictionary], sources: torch.Tensor, k: int
) -> Effects:
    if k == 0:
        return _no_effects(g.size, g.kind == "head")
    if g.kind == "neuron":
        mlp = cast(Block, model.blocks[g.layer]).dense_mlp()
        assert mlp is not None
        return direction_effects(model, mlp.W_out, k)
    if g.kind == "latent":
        decs = saes[g.sae].decoders  # a cross-layer transcoder's rows all reach the logits
        return direction_effects(model, decs[0] if len(decs) == 1 else sum(decs[1:], decs[0]), k)
    return head_effects(model, g.layer, sources, k)


def write_records(
    dest: Path,
    model: HookedTransformer,
    groups: list[Group],
    saes: list[Dictionary],
    states: dict[str, GroupState],
    shared: SharedState,
    cal: dict[str, Calibration],
    corpus: Corpus,
    cfg: HarvestConfig,
    identity: dict[str, Any],
    log: Callable[[str], None] = print,
) -> None:
    """Write the records artifact at `dest` (atomically)."""
    ctx, before, after = corpus.ctx, cfg.before, cfg.after
    vocab = vocab_strings(model)
    counts = shared.tok_count.cpu()
    sources = torch.argsort(-counts, stable=True)[
        : min(cfg.effect_sources, int((counts > 0).sum()) or 1)
    ]
    flat_rows = np.asarray(corpus.rows).reshape(-1)
    node_cols: dict[str, list[Any]] = {}
    ex_parts: list[dict[str, Any]] = []
    ids: list[str] = []
    log(f"writing records: statistics, examples and output-token effects of {len(groups)} groups")
    for g in groups:
        st, c = states[g.name], cal[g.name]
        gid = g.node_ids()
        ex = group_examples(g, st, shared, before)
        ex["node"] = ex["node"] + len(ids)
        ex_parts.append(ex)
        ids += gid
        mom = moments(st, c, shared.n_tokens)
        o = sort_slots(st.t["top_key"], st.t["top_pos"])
        top_pos = st.t["top_pos"].gather(1, o).cpu().numpy()
        top_tok = [flat_rows[row[row != EMPTY]].tolist() for row in top_pos]
        eff = _effects(model, g, saes, sources, cfg.effects_k if cfg.effects else 0)
        hist_lo = c.hist_lo.cpu().numpy()
        cols: dict[str, Any] = {
            "node_id": gid,
            "kind": [g.kind] * g.size,
            "layer": [g.layer] * g.size,
            "index": list(range(g.size)),
            "hook": [g.hook] * g.size,
            "group": [g.name] * g.size,
            "count": [shared.n_tokens] * g.size,
            "mean": mom["mean"],
            "var": mom["var"],
            "skew": mom["skew"],
            "kurtosis": mom["kurtosis"],
            "density": st.t["active"].cpu().numpy() / max(shared.n_tokens, 1),
            "max": st.t["vmax"].cpu().numpy(),
            "min": st.t["vmin"].cpu().numpy(),
            "hist_lo": hist_lo,
            "hist_hi": hist_lo + cfg.hist_bins / c.hist_scale.cpu().numpy(),
            "hist": st.t["hist"].cpu().numpy().tolist(),
            "quantile_bounds": c.bounds.cpu().numpy().tolist(),
            "top_token_ids": top_tok,
            "top_tokens": [[vocab[i] for i in r] for r in top_tok],
        }
        for side in ("boost", "suppress"):
            tid = getattr(eff, f"{side}_ids").tolist()
            cols[f"{side}_ids"] = tid
            cols[f"{side}_tokens"] = [[vocab[i] for i in r] for r in tid]
            cols[f"{side}_values"] = getattr(eff, f"{side}_values").tolist()
            src = getattr(eff, f"{side}_sources")
            cols[f"{side}_sources"] = src.tolist() if src is not None else [None] * g.size
        for key, v in cols.items():
            node_cols.setdefault(key, []).extend(list(v))
    id_arr = np.array(ids, dtype=object)
    node_order = np.argsort(id_arr, kind="stable")
    rank_of = np.empty(len(ids), dtype=np.int64)
    rank_of[node_order] = np.arange(len(ids))
    nodes = nodes_table(node_cols).take(pa.array(node_order))
    examples, positions = examples_table(ex_parts, id_arr, rank_of, ctx, before, after)
    windows = windows_table(positions, corpus, flat_rows, before, after)
    per_node = cfg.top_k + cfg.random_k + len(cfg.quantile_levels) * cfg.per_quantile
    prov = {
        "model": model.cfg.name,
        "fingerprint": identity["model"],
        "saes": [
            {"hook": s.hook_in, "d_sae": s.d_sae, "fingerprint": f}
            for s, f in zip(saes, identity["saes"], strict=True)
        ],
        "corpus": {"description": corpus.description, "sha256": corpus.sha256},
        "identity": identity,
    }
    data = {
        "n_tokens": shared.n_tokens,
        "ctx": ctx,
        "n_nodes": len(ids),
        "window": {"before": before, "after": after},
        "top_k": cfg.top_k,
        "random_k": cfg.random_k,
        "per_quantile": cfg.per_quantile,
        "quantile_levels": list(cfg.quantile_levels),
        "hist_bins": cfg.hist_bins,
        "groups": [
            {"name": g.name, "kind": g.kind, "layer": g.layer, "hook": g.hook, "size": g.size}
            | ({"key": g.key} if g.key else {})
            for g in groups
        ],
        "tables": ["nodes.parquet", "examples.parquet", "windows.parquet", "vocab.parquet"],
    }
    with writing_artifact(
        dest, Manifest(RECORDS_KIND, SCHEMA_VERSION, provenance=prov, data=data)
    ) as tmp:
        pq.write_table(nodes, tmp / "nodes.parquet", row_group_size=ROW_GROUP_NODES * 16)
        pq.write_table(
            examples,
            tmp / "examples.parquet",
            row_group_size=ROW_GROUP_NODES * per_node,
            compression="zstd",
        )
        pq.write_table(windows, tmp / "windows.parquet", row_group_size=8192, compression="zstd")
        vt = pa.table({"id": pa.array(range(len(vocab)), pa.int32()), "token": vocab})
        pq.write_table(vt, tmp / "vocab.parquet")
    log(f"records of {len(ids):,} nodes over {shared.n_tokens:,} tokens written to {dest}")

"""Columns of the records' Parquet tables, built vectorised from merged harvest states."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import torch

from lenscope.records.config import Group
from lenscope.records.corpus import Corpus
from lenscope.records.select import EMPTY, sort_slots
from lenscope.records.state import GroupState, SharedState

SETS = ("top", "random", "quantile")


def group_examples(g: Group, st: GroupState, shared: SharedState, before: int) -> dict[str, Any]:
    """Flat example arrays of one group: node, set, bin, rank, position, value, window, attn.

    Slots are sorted here into presentation order: top by (activation desc, position), samples
    by (priority, position).
    """
    t = {k: v.cpu() for k, v in st.t.items()}
    n, heads = g.size, g.kind == "head"
    parts: list[dict[str, Any]] = []

    def add(
        pos: torch.Tensor,
        val: torch.Tensor,
        win: torch.Tensor,
        attn: torch.Tensor | None,
        set_code: int,
        bins: torch.Tensor,
    ) -> None:
        node = torch.arange(n, device="cpu").view(n, *([1] * (pos.ndim - 1))).expand_as(pos)
        ranks = torch.arange(pos.shape[-1], device="cpu").expand_as(pos)
        keep = (pos != EMPTY).reshape(-1)
        w = win.shape[-1]
        parts.append(
            {
                "node": node.reshape(-1)[keep].numpy(),
                "set": np.full(int(keep.sum()), set_code, np.int8),
                "bin": bins.expand_as(pos).reshape(-1)[keep].numpy().astype(np.int16),
                "rank": ranks.reshape(-1)[keep].numpy().astype(np.int16),
                "position": pos.reshape(-1)[keep].numpy(),
                "activation": val.reshape(-1)[keep].numpy(),
                "win": win.reshape(-1, w)[keep].numpy(),
                "attn": None if attn is None else attn.reshape(-1, w)[keep].numpy(),
            }
        )

    def sort(o: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else take(x, o)

    o = sort_slots(t["top_key"], t["top_pos"])
    add(
        take(t["top_pos"], o),
        -take(t["top_key"], o),
        take(t["top_win"], o),
        sort(o, t.get("top_attn")),
        0,
        torch.tensor(-1, device="cpu"),
    )
    r = shared.r_pos.shape[0]
    if r:
        ro = sort_slots(shared.r_key.cpu().view(1, r), shared.r_pos.cpu().view(1, r))[0]
        pos = shared.r_pos.cpu()[ro].view(1, r).expand(n, r)
        win = t["r_win"][:, ro]
        attn = t["r_attn"][:, ro] if "r_attn" in t else None
        add(pos, win[:, :, before], win, attn, 1, torch.tensor(-1, device="cpu"))
    q, s = t["q_pos"].shape[1:]
    if s:
        flat = {k: v.reshape(n * q, s, *v.shape[3:]) for k, v in t.items() if k.startswith("q_")}
        o = sort_slots(flat["q_key"], flat["q_pos"])
        srt = {k: take(v, o).view(n, q, s, *v.shape[2:]) for k, v in flat.items()}
        add(
            srt["q_pos"],
            srt["q_val"],
            srt["q_win"],
            srt.get("q_attn"),
            2,
            torch.arange(q, device="cpu").view(1, q, 1),
        )
    out: dict[str, Any] = {
        k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "attn"
    }
    out["attn"] = np.concatenate([p["attn"] for p in parts]) if heads else None
    return out


def take(x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """`x[i, o[i, j], ...]` for x [M, K, ...] and o [M, K]."""
    return torch.take_along_dim(x, o.view(*o.shape, *([1] * (x.ndim - 2))), dim=1)


def _lists(
    flat: npt.NDArray[Any],
    mask: npt.NDArray[np.bool_],
    typ: pa.DataType,
    valid: npt.NDArray[np.bool_] | None = None,
) -> pa.Array:
    """A list column from [E, W] values, keeping the entries where `mask` is True."""
    offsets = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int32)
    values = pa.array(flat[mask], type=typ)
    m = None if valid is None else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=m)


def _window_mask(
    pos: npt.NDArray[np.int64], ctx: int, before: int, after: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    p = pos % ctx
    lead = np.minimum(before, p)
    tail = np.minimum(after, ctx - 1 - p)
    w = np.arange(before + 1 + after)
    mask = (w >= (before - lead)[:, None]) & (w <= (before + tail)[:, None])
    return mask, lead


def nodes_table(cols: dict[str, list[Any]]) -> pa.Table:
    f32, i32 = pa.float32(), pa.int32()
    types: dict[str, pa.DataType] = {
        "node_id": pa.string(),
        "kind": pa.string(),
        "layer": i32,
        "index": i32,
        "hook": pa.string(),
        "group": pa.string(),
        "count": pa.int64(),
        "mean": pa.float64(),
        "var": pa.float64(),
        "skew": pa.float64(),
        "kurtosis": pa.float64(),
        "density": pa.float64(),
        "max": f32,
        "min": f32,
        "hist_lo": f32,
        "hist_hi": f32,
        "hist": pa.list_(pa.int64()),
        "quantile_bounds": pa.list_(f32),
        "top_token_ids": pa.list_(i32),
        "top_tokens": pa.list_(pa.string()),
    }
    for side in ("boost", "suppress"):
        types[f"{side}_ids"] = pa.list_(i32)
        types[f"{side}_tokens"] = pa.list_(pa.string())
        types[f"{side}_values"] = pa.list_(f32)
        types[f"{side}_sources"] = pa.list_(i32)
    return pa.table({k: pa.array(cols[k], type=t, from_pandas=True) for k, t in types.items()})


def examples_table(
    parts: list[dict[str, Any]],
    ids: npt.NDArray[Any],
    rank_of: npt.NDArray[np.int64],
    ctx: int,
    before: int,
    after: int,
) -> tuple[pa.Table, npt.NDArray[np.int64]]:
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "attn"}
    w = cat["win"].shape[1]
    has_attn = np.concatenate([np.full(len(p["node"]), p["attn"] is not None) for p in parts])
    attn = np.concatenate(
        [
            p["attn"] if p["attn"] is not None else np.full((len(p["node"]), w), np.nan, np.float32)
            for p in parts
        ]
    )
    o = np.lexsort((cat["rank"], cat["bin"], cat["set"], rank_of[cat["node"]]))
    cat = {k: v[o] for k, v in cat.items()}
    attn, has_attn = attn[o], has_attn[o]
    mask, _ = _window_mask(cat["position"], ctx, before, after)
    table = pa.table(
        {
            "node_id": pa.array(ids[cat["node"]], pa.string()),
            "set": pa.array(np.array(SETS, dtype=object)[cat["set"]], pa.string()),
            "bin": pa.array(cat["bin"], pa.int16()),
            "rank": pa.array(cat["rank"], pa.int16()),
            "position": pa.array(cat["position"], pa.int64()),
            "activation": pa.array(cat["activation"].astype(np.float32), pa.float32()),
            "acts": _lists(cat["win"].astype(np.float32), mask, pa.float32()),
            "attn": _lists(attn.astype(np.float32), mask, pa.float32(), has_attn),
        }
    )
    return table, np.unique(cat["position"])


def windows_table(
    pos: npt.NDArray[np.int64], corpus: Corpus, flat_rows: npt.NDArray[Any], before: int, after: int
) -> pa.Table:
    ctx = corpus.ctx
    mask, lead = _window_mask(pos, ctx, before, after)
    offs = np.arange(-before, after + 1)
    row_start = pos - pos % ctx
    idx = np.clip(pos[:, None] + offs, row_start[:, None], row_start[:, None] + ctx - 1)
    toks = np.asarray(flat_rows[idx.reshape(-1)]).reshape(idx.shape)
    stream = corpus.stream_offset(pos)
    return pa.table(
        {
            "position": pa.array(pos, pa.int64()),
            "start": pa.array(pos - lead, pa.int64()),
            "center": pa.array(lead.astype(np.int16), pa.int16()),
            "tokens": _lists(toks.astype(np.int32), mask, pa.int32()),
            "offset": pa.array(stream, pa.int64()),
            "doc": pa.array(corpus.doc_of(stream), pa.string()),
        }
    )

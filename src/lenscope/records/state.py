"""The running state of a harvest: per group of nodes, everything a record needs, mergeable exactly.

`GroupState.update` folds one batch of activations [n_nodes, tokens] into the state; `merge`
folds another state (another shard or rank) in. Both are exact: example sets are chosen by a total
order (see `select`), counts are integers, and the power sums behind mean/variance/skew/kurtosis
are accumulated in float64 within a shard and then added as exact integers (fixed point, 2^-80),
so any split of the corpus into shards and ranks gives bit-identical records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.records import sparse
from lenscope.records.batch_stats import (
    Workspace,
    bins_of,
    hist_counts,
    moment_sums,
    quantile_candidates,
    top_candidates,
)
from lenscope.records.select import (
    EMPTY,
    attention_rows,
    node_windows,
    shared_windows,
    slot_merge,
)
from lenscope.records.sparse import SparseRows

FIXED_BITS = 80
INF = float("inf")


@dataclass
class Calibration:
    """Per-node constants fixed before the harvest from its first rows (identical on all ranks)."""

    shift: Tensor  # [n] subtracted before power sums (the calibration mean)
    bounds: Tensor  # [n, Q] lower edges of the quantile bins
    hist_lo: Tensor  # [n] left edge of the histogram
    hist_scale: Tensor  # [n] bins per activation unit


def calibrate(xt: Tensor, levels: tuple[float, ...], bins: int) -> Calibration:
    """Calibration from activations [n, T]: mean, order statistics at `levels`, histogram range."""
    x = xt.float()
    t = x.shape[1]
    kth = sorted({0, t - 1, *(int(q * (t - 1)) for q in levels)})
    part = torch.from_numpy(np.partition(x.cpu().numpy(), kth, axis=1)).to(x.device)
    idx = torch.tensor([int(q * (t - 1)) for q in levels], dtype=torch.long, device=x.device)
    lo, hi = part[:, 0], part[:, -1]
    span = hi - lo
    span = torch.where(span > 0, span * 1.5, torch.ones_like(span))
    return Calibration(x.mean(1), part[:, idx], lo, bins / span)


@dataclass
class BatchInfo:
    """What all groups share about one batch: where it sits and which tokens are sampled."""

    base: int  # global position of the batch's first token
    ctx: int  # tokens per row
    offsets: Tensor  # [W] window offsets around an example's token
    sub: Tensor | None  # token indices of the rows feeding quantiles/histograms (None = all)
    qkey: Tensor  # [T_sub] float64 priorities of those tokens inside quantile bins
    r_slots: Tensor  # random-sample slots taken over by this batch's tokens ...
    r_tok: Tensor  # ... and those tokens (batch indices)
    ws: Workspace = field(default_factory=Workspace)  # scratch buffers shared by all groups
    context_only: int = 0  # first positions of each row that are never top examples


@dataclass
class SharedState:
    """State common to all groups: the random sample's positions, token counts, shards done."""

    r_key: Tensor  # [R] float64 priorities
    r_pos: Tensor  # [R] int64 positions
    tok_count: Tensor  # [V] int64
    n_tokens: int = 0
    done: set[int] = field(default_factory=set)

    @classmethod
    def empty(cls, r: int, vocab: int, device: torch.device) -> SharedState:
        return cls(
            torch.full((r,), INF, dtype=torch.float64, device=device),
            torch.full((r,), EMPTY, dtype=torch.long, device=device),
            torch.zeros(vocab, dtype=torch.long, device=device),
        )

    def merge_random(self, key: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Fold candidates (key, pos) into the sample; return (slots taken, candidate indices)."""
        _, slots, cand = slot_merge(
            self.r_key.view(1, -1), self.r_pos.view(1, -1), key.view(1, -1), pos.view(1, -1)
        )
        return slots, cand

    def select_random(self, keys: Tensor, base: int, r: int) -> tuple[Tensor, Tensor]:
        """Fold a batch's token priorities [T] in; return (slots taken, batch tokens taking them)."""
        kv, ki = keys.topk(min(r, keys.shape[0]), largest=False)
        slots, cand = self.merge_random(kv, ki + base)
        return slots, ki[cand]


class GroupState:
    """Top examples, random and quantile samples, moments, density, extrema and histogram.

    Example sets live in slots (unsorted); `sort_slots` gives their presentation order.
    `top_key` is minus the activation, so that every set keeps its smallest (key, position).
    """

    def __init__(
        self,
        n: int,
        cal: Calibration,
        k: int,
        r: int,
        per_q: int,
        window: int,
        bins: int,
        heads: bool,
    ) -> None:
        q = cal.bounds.shape[1]
        dev = cal.shift.device
        nan = float("nan")

        def full(shape: tuple[int, ...], v: float, dt: torch.dtype = torch.float32) -> Tensor:
            return torch.full(shape, v, dtype=dt, device=dev)

        self.n, self.k, self.r, self.per_q, self.window, self.bins = n, k, r, per_q, window, bins
        self.heads = heads
        self.sliding = 0  # heads of a sliding-window layer: its window (see attention_rows)
        self.cal = cal
        self.t: dict[str, Tensor] = {
            "top_key": full((n, k), INF),
            "top_pos": full((n, k), EMPTY, torch.long),
            "top_win": full((n, k, window), nan),
            "q_key": full((n, q, per_q), INF, torch.float64),
            "q_pos": full((n, q, per_q), EMPTY, torch.long),
            "q_val": full((n, q, per_q), nan),
            "q_win": full((n, q, per_q, window), nan),
            "r_win": full((n, r, window), nan),
            "hist": torch.zeros((n, bins + 2), dtype=torch.long, device=dev),
            "active": torch.zeros(n, dtype=torch.long, device=dev),
            "vmin": full((n,), INF),
            "vmax": full((n,), -INF),
            "mom": torch.zeros((4, n), dtype=torch.float64, device=dev),
        }
        if heads:
            self.t["top_attn"] = full((n, k, window), nan)
            self.t["q_attn"] = full((n, q, per_q, window), nan)
            self.t["r_attn"] = full((n, r, window), nan)
        self.exact: list[int] = [0] * (4 * n)
        self.pos_end = 0  # every kept position is below this (a batch from here on cannot tie)

    # ---- one batch --------------------------------------------------------------------------------
    def update(
        self,
        x: Tensor | SparseRows,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        attn_scale: float = 1.0,
    ) -> None:
        """Fold activations `x` [T, n] (T = batch rows x ctx, row-major; dense, or a TopK
        dictionary's `SparseRows`) into the state."""
        t = self.t
        x = x.contiguous()
        strict = info.base >= self.pos_end
        if isinstance(x, SparseRows):
            sums = sparse.moment_sums(x, self.cal.shift)
            vmin, vmax = sparse.extrema(x)
        else:
            sums = moment_sums(x, self.cal.shift, info.ws)
            vmin, vmax = x.amin(0), x.amax(0)  # (aminmax over dim 0 is slow on CPU)
        t["mom"] += sums[:4]
        t["active"] += sums[4].round_().long()
        torch.minimum(t["vmin"], vmin, out=t["vmin"])
        torch.maximum(t["vmax"], vmax, out=t["vmax"])
        self._top(x, vmax, info, qk, attn_scale, strict)
        if self.r and info.r_slots.numel():
            slots, tok = info.r_slots, info.r_tok
            t["r_win"][:, slots] = shared_windows(x, tok, info.ctx, info.offsets)
            if self.heads and qk is not None:
                h, tt = torch.meshgrid(torch.arange(self.n, device=tok.device), tok, indexing="ij")
                a = attention_rows(
                    qk[0],
                    qk[1],
                    h.reshape(-1),
                    tt.reshape(-1),
                    attn_scale,
                    info.offsets,
                    self.sliding,
                )
                t["r_attn"][:, slots] = a.view(self.n, len(tok), -1)
        self.pos_end = max(self.pos_end, info.base + x.shape[0])
        if info.sub is None:
            sub = x.dense().T.contiguous() if isinstance(x, SparseRows) else x.T.contiguous()
        elif info.sub.numel():
            sub = x.index_select(0, info.sub).T.contiguous()
        else:
            return
        t["hist"] += hist_counts(sub, self.cal.hist_lo, self.cal.hist_scale, self.bins)
        if self.per_q:
            self._quantiles(x, sub, info, qk, attn_scale, strict)

    def _payload(
        self,
        prefix: str,
        x: Tensor | SparseRows,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        scale: float,
        rows: Tensor,
        slots: Tensor,
        nodes: Tensor,
        tok: Tensor,
    ) -> None:
        """Windows (and attention) of the tokens that entered slots (rows, slots) of `prefix`."""
        win, attn = self.t[f"{prefix}_win"], self.t.get(f"{prefix}_attn")
        win.view(-1, *win.shape[-2:])[rows, slots] = node_windows(
            x, nodes, tok, info.ctx, info.offsets
        )
        if attn is not None and qk is not None:
            a = attention_rows(qk[0], qk[1], nodes, tok, scale, info.offsets, self.sliding)
            attn.view(-1, *attn.shape[-2:])[rows, slots] = a

    def _top(
        self,
        x: Tensor | SparseRows,
        vmax: Tensor,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        scale: float,
        strict: bool,
    ) -> None:
        """Merge the batch's candidates for the top-k (see `top_candidates`) into the slots."""
        t = self.t
        kth = -t["top_key"].amax(1)
        first = info.context_only
        if isinstance(x, SparseRows):
            cand = sparse.top_candidates(x, kth, self.k, strict, (info.ctx, first))
        elif first:  # the rows' first positions out of the running, restored before their windows
            heads = x.view(-1, info.ctx, x.shape[1])[:, :first]
            saved = heads.clone()
            heads.fill_(-INF)
            try:
                cand = top_candidates(x, vmax, kth, self.k, strict)
            finally:
                heads.copy_(saved)
        else:
            cand = top_candidates(x, vmax, kth, self.k, strict)
        if cand is None:
            return
        key, tok = cand
        pos = torch.where(key < INF, tok + info.base, EMPTY)
        rows, slots, c = slot_merge(t["top_key"], t["top_pos"], key, pos)
        if rows.numel():
            self._payload("top", x, info, qk, scale, rows, slots, rows, tok[rows, c])

    def _quantiles(
        self,
        x: Tensor | SparseRows,
        sub: Tensor,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        scale: float,
        strict: bool,
    ) -> None:
        """Merge the sampled tokens' candidates for each quantile bin into its slots."""
        t, m = self.t, self.per_q
        nq = self.cal.bounds.shape[1]
        qk_, qp = t["q_key"].view(-1, m), t["q_pos"].view(-1, m)
        worst = qk_.amax(1).view(self.n, nq)
        cand = quantile_candidates(bins_of(sub, self.cal.bounds), info.qkey, worst, m, strict)
        if cand is None:
            return
        key, local = cand
        tok = local if info.sub is None else info.sub[local]
        pos = torch.where(key < INF, tok + info.base, EMPTY)
        rows, slots, c = slot_merge(qk_, qp, key, pos)
        if rows.numel():
            nodes, tk = rows // nq, tok[rows, c]
            t["q_val"].view(-1, m)[rows, slots] = x[tk, nodes]
            self._payload("q", x, info, qk, scale, rows, slots, nodes, tk)

    # ---- shards and merges --------------------------------------------------------------------
    def flush(self) -> None:
        """Move the shard's float64 power sums into the exact integer accumulators."""
        mom = self.t["mom"].cpu().numpy()
        if not np.isfinite(mom).all():
            raise InputError("the model produced NaN or infinite activations; cannot harvest them")
        scaled = np.rint(np.ldexp(mom, FIXED_BITS)).ravel()
        self.exact = [a + int(b) for a, b in zip(self.exact, scaled.tolist(), strict=True)]
        self.t["mom"].zero_()

    def merge(self, other: GroupState, r_slots: Tensor, r_cand: Tensor) -> None:
        """Fold in a state over disjoint tokens; the shared random sample took `r_slots` from
        `other`'s slots `r_cand`."""
        t, u = self.t, other.t
        rows, slots, cand = slot_merge(t["top_key"], t["top_pos"], u["top_key"], u["top_pos"])
        for name in [x for x in t if x.startswith("top_") and x not in ("top_key", "top_pos")]:
            t[name][rows, slots] = u[name][rows, cand]
        for name in [x for x in t if x.startswith("r_")]:
            t[name][:, r_slots] = u[name][:, r_cand]
        m = self.per_q
        rows, slots, cand = slot_merge(
            t["q_key"].view(-1, m),
            t["q_pos"].view(-1, m),
            u["q_key"].view(-1, m),
            u["q_pos"].view(-1, m),
        )
        for name in [x for x in t if x.startswith("q_") and x not in ("q_key", "q_pos")]:
            tv, uv = (
                t[name].view(-1, m, *t[name].shape[3:]),
                u[name].view(-1, m, *u[name].shape[3:]),
            )
            tv[rows, slots] = uv[rows, cand]
        t["hist"] += u["hist"]
        t["active"] += u["active"]
        torch.minimum(t["vmin"], u["vmin"], out=t["vmin"])
        torch.maximum(t["vmax"], u["vmax"], out=t["vmax"])
        kept = -1
        for name in ("top_pos", "q_pos"):
            if u[name].numel():
                kept = max(kept, int(torch.where(u[name] == EMPTY, -1, u[name]).max()))
        self.pos_end = max(self.pos_end, other.pos_end, kept + 1)
        self.exact = [a + b for a, b in zip(self.exact, other.exact, strict=True)]

    def power_sums(self, n_tokens: int) -> np.ndarray:
        """[4, n] float64: sum over tokens of (x - shift)^k / n_tokens, correctly rounded."""
        den = n_tokens << FIXED_BITS
        return np.array([v / den for v in self.exact], dtype=np.float64).reshape(4, self.n)

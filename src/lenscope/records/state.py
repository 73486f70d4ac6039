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
from lenscope.records.select import (
    EMPTY,
    attention_rows,
    node_windows,
    shared_windows,
    slot_merge,
)

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
            "mom": torch.zeros((4, n), dtype=torch.float64, device=dev),
        }
        if heads:
            self.t["top_attn"] = full((n, k, window), nan)
            self.t["q_attn"] = full((n, q, per_q, window), nan)
            self.t["r_attn"] = full((n, r, window), nan)
        self.exact: list[int] = [0] * (4 * n)
        self._bufs: dict[tuple[str, tuple[int, ...]], Tensor] = {}

    def _buf(self, name: str, shape: tuple[int, ...], dt: torch.dtype = torch.float32) -> Tensor:
        """A reused work buffer (fresh large allocations cost page faults on every batch)."""
        key = (name, shape)
        b = self._bufs.get(key)
        if b is None:
            self._bufs = {k: v for k, v in self._bufs.items() if k[0] != name}
            b = self._bufs[key] = torch.empty(shape, dtype=dt, device=self.cal.shift.device)
        return b

    # ---- one batch --------------------------------------------------------------------------------
    def update(
        self, x: Tensor, info: BatchInfo, qk: tuple[Tensor, Tensor] | None, attn_scale: float = 1.0
    ) -> None:
        """Fold activations `x` [T, n] (T = batch rows x ctx, row-major) into the state."""
        t = self.t
        shape = (x.shape[1], x.shape[0])
        xt = self._buf("xt", shape).copy_(x.T)
        d = torch.sub(xt, self.cal.shift.unsqueeze(1), out=self._buf("d", shape))
        d2 = torch.mul(d, d, out=self._buf("d2", shape))
        s1, s2 = d.sum(1), d2.sum(1)
        s3 = torch.mul(d2, d, out=d).sum(1)
        s4 = torch.mul(d2, d2, out=d).sum(1)
        t["mom"] += torch.stack([s1, s2, s3, s4]).double()
        t["active"] += torch.gt(xt, 0, out=d).sum(1).round_().long()  # exact below 2^24 tokens
        torch.minimum(t["vmin"], xt.amin(1), out=t["vmin"])
        self._top(xt, xt.amax(1), info, qk, attn_scale)
        if self.r and info.r_slots.numel():
            slots, tok = info.r_slots, info.r_tok
            t["r_win"][:, slots] = shared_windows(xt, tok, info.ctx, info.offsets)
            if self.heads and qk is not None:
                h, tt = torch.meshgrid(torch.arange(self.n, device=tok.device), tok, indexing="ij")
                a = attention_rows(
                    qk[0], qk[1], h.reshape(-1), tt.reshape(-1), attn_scale, info.offsets
                )
                t["r_attn"][:, slots] = a.view(self.n, len(tok), -1)
        if info.sub is None:
            sub = xt
        elif info.sub.numel():
            sub = x.index_select(0, info.sub).T.contiguous()
        else:
            return
        self._hist(sub)
        if self.per_q:
            self._quantiles(xt, sub, info, qk, attn_scale)

    def _payload(
        self,
        prefix: str,
        xt: Tensor,
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
            xt, nodes, tok, info.ctx, info.offsets
        )
        if attn is not None and qk is not None:
            a = attention_rows(qk[0], qk[1], nodes, tok, scale, info.offsets)
            attn.view(-1, *attn.shape[-2:])[rows, slots] = a

    def _top(
        self,
        xt: Tensor,
        vmax: Tensor,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        scale: float,
    ) -> None:
        """Top-k of the nodes whose batch maximum reaches their current k-th best (ties too)."""
        t = self.t
        need = torch.nonzero(-vmax <= t["top_key"].amax(1)).squeeze(1)
        if need.numel() == 0:
            return
        k = min(self.k, xt.shape[1])
        val, tok = (xt if need.numel() == self.n else xt[need]).topk(k, dim=1)
        key = torch.full((self.n, k), INF, dtype=val.dtype, device=val.device)
        pos = torch.full((self.n, k), EMPTY, dtype=torch.long, device=val.device)
        key[need], pos[need] = -val, tok + info.base
        rows, slots, cand = slot_merge(t["top_key"], t["top_pos"], key, pos)
        if rows.numel():
            tk = pos[rows, cand] - info.base
            self._payload("top", xt, info, qk, scale, rows, slots, rows, tk)

    def _hist(self, sub: Tensor) -> None:
        n, b = self.n, self.bins
        u = (sub - self.cal.hist_lo.unsqueeze(1)).mul_(self.cal.hist_scale.unsqueeze(1))
        idx = u.floor_().clamp_(-1, b).add_(1).long()
        idx += torch.arange(n, device=sub.device).unsqueeze(1) * (b + 2)
        self.t["hist"] += torch.bincount(idx.view(-1), minlength=n * (b + 2)).view(n, b + 2)

    def _quantiles(
        self,
        xt: Tensor,
        sub: Tensor,
        info: BatchInfo,
        qk: tuple[Tensor, Tensor] | None,
        scale: float,
    ) -> None:
        t, bounds = self.t, self.cal.bounds
        nq, s = bounds.shape[1], min(self.per_q, sub.shape[1])
        keys, toks = [], []
        for i in range(nq):
            inside = sub >= bounds[:, i : i + 1]
            if i + 1 < nq:
                inside &= sub < bounds[:, i + 1 : i + 2]
            kv, ki = torch.where(inside, info.qkey, INF).topk(s, dim=1, largest=False)
            keys.append(kv)
            toks.append(ki if info.sub is None else info.sub[ki])
        key = torch.stack(keys, 1).view(self.n * nq, s)
        tok = torch.stack(toks, 1).view(self.n * nq, s)
        pos = torch.where(key < INF, tok + info.base, EMPTY)
        qk_, qp = t["q_key"].view(-1, self.per_q), t["q_pos"].view(-1, self.per_q)
        rows, slots, cand = slot_merge(qk_, qp, key, pos)
        if rows.numel():
            nodes, tk = rows // nq, tok[rows, cand]
            t["q_val"].view(-1, self.per_q)[rows, slots] = xt[nodes, tk]
            self._payload("q", xt, info, qk, scale, rows, slots, nodes, tk)

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
        self.exact = [a + b for a, b in zip(self.exact, other.exact, strict=True)]

    def power_sums(self, n_tokens: int) -> np.ndarray:
        """[4, n] float64: sum over tokens of (x - shift)^k / n_tokens, correctly rounded."""
        den = n_tokens << FIXED_BITS
        return np.array([v / den for v in self.exact], dtype=np.float64).reshape(4, self.n)

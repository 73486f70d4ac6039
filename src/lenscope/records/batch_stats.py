"""Per-batch kernels of a harvest: a group's activations in a few passes, no per-node loops.

Activations arrive as `x` [T, n] (batch tokens x nodes, the hook's own layout: never transposed
or copied whole). Each kernel returns small tensors that `GroupState` folds into its state:

* `moment_sums`: sums over tokens of d, d^2, d^3, d^4 (d = x - shift) and of [x > 0], from five
  planes written once per chunk of tokens and summed in one reduction.
* `top_candidates`: per node, the batch tokens that may enter its top-k. After the first batch a
  node's k-th best is known, so a compare and a `nonzero` find the few tokens above it; a full
  `topk` runs only for nodes with more than k such tokens (the first batch), and ties at the
  k-th value are resolved by token order, so the kept set is exactly the documented total order.
* `quantile_candidates`: per (node, bin), the sampled tokens whose priority beats the bin's
  current worst kept one, at most `per_quantile` each, by (priority, token).
"""

from __future__ import annotations

import torch
from torch import Tensor

INF = float("inf")
PLANE_ELEMENTS = 1 << 20  # elements per plane of `moment_sums` (5 planes: 20 MiB in float32)
EXACT_COUNT = 1 << 24  # float32 counts 0/1 exactly up to here


class Workspace:
    """Scratch buffers reused across batches and groups (fresh large allocations page-fault)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def get(
        self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        n = 1
        for s in shape:
            n *= s
        key = (name, dtype, device)
        b = self._bufs.get(key)
        if b is None or b.numel() < n:
            b = self._bufs[key] = torch.empty(n, dtype=dtype, device=device)
        return b[:n].view(shape)


def moment_sums(x: Tensor, shift: Tensor, ws: Workspace) -> Tensor:
    """[5, n] float64: sums over the tokens of `x` [T, n] of d, d^2, d^3, d^4 (d = x - shift)
    and of [x > 0]. Each chunk of tokens is summed in float32 (counts exactly), then in float64."""
    t, n = x.shape
    chunks = max(1, -(-t * n // PLANE_ELEMENTS))
    step = min(-(-t // chunks), EXACT_COUNT)
    out = torch.zeros(5, n, dtype=torch.float64, device=x.device)
    for lo in range(0, t, step):
        xc = x[lo : lo + step]
        p = ws.get("planes", (5, xc.shape[0], n), x.dtype, x.device)
        torch.sub(xc, shift, out=p[0])
        torch.mul(p[0], p[0], out=p[1])
        torch.mul(p[0:2], p[1], out=p[2:4])  # d^3 and d^4 in one op
        torch.gt(xc, 0, out=p[4])
        out += p.sum(1)  # pairwise sums: a matmul with ones is faster but 10x less accurate
    return out


def top_candidates(
    x: Tensor, vmax: Tensor, kth: Tensor, k: int, strict: bool
) -> tuple[Tensor, Tensor] | None:
    """Candidates for each node's top-k from a batch `x` [T, n], or None when none can enter.

    `kth` [n] is the node's current k-th best value (-inf while it holds fewer than k), `vmax`
    [n] the batch maximum. A node's candidates are its tokens above `kth` (at or above it unless
    `strict`: when every batch token comes after every kept one, a tie cannot enter) when there
    are at most k; else its batch top-k by (value descending, token ascending).
    Returns (key [n, c] = -value or +inf for none, tok [n, c] batch token index).
    """
    t, n = x.shape
    idx = torch.nonzero(vmax > kth if strict else vmax >= kth).squeeze(1)
    m = idx.numel()
    if m == 0:
        return None
    xs, th = (x, kth) if m == n else (x.index_select(1, idx), kth[idx])
    heavy = torch.nonzero(th == -INF).squeeze(1)  # nodes holding fewer than k: batch top-k
    if heavy.numel() < m:
        mask = xs > th if strict else xs >= th  # [T, m]
        mask.index_fill_(1, heavy, False)
        tj = torch.nonzero(mask)  # [M, 2]: (token, column)
        tok, j = tj[:, 0], tj[:, 1]
        over = torch.bincount(j, minlength=m) > k  # more than k above the k-th: batch top-k
        if bool(over.any()):
            keep = ~over[j]
            tok, j = tok[keep], j[keep]
            heavy = torch.cat([heavy, torch.nonzero(over).squeeze(1)])
    else:
        tok = j = heavy.new_zeros(0)
    if heavy.numel():
        xh = xs if heavy.numel() == m else xs.index_select(1, heavy)
        hr, ht = batch_top(xh.T.contiguous(), min(k, t))
        j, tok = torch.cat([j, heavy[hr]]), torch.cat([tok, ht])
    if j.numel() == 0:
        return None
    o = torch.argsort(j, stable=True)
    j, tok = j[o], tok[o]
    counts = torch.bincount(j, minlength=m)
    c = int(counts.max())
    rank = torch.arange(len(j), device=x.device) - (counts.cumsum(0) - counts)[j]
    key = torch.full((n, c), INF, dtype=x.dtype, device=x.device)
    out_tok = torch.zeros((n, c), dtype=torch.long, device=x.device)
    rows = idx[j]
    key[rows, rank] = -xs[tok, j]
    out_tok[rows, rank] = tok
    return key, out_tok


def count_true(mask: Tensor, dim: int) -> Tensor:
    """int32 counts of True along `dim` (summing bools directly is several times slower)."""
    return mask.view(torch.uint8).sum(dim, dtype=torch.int32)


def batch_top(xt: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(row, token) of the k largest entries of each row of `xt` [h, T], ties by lower token."""
    vals, inds = xt.topk(k, dim=1)
    v = vals[:, -1:]  # the k-th largest value
    room = k - count_true(xt > v, 1)  # slots left for entries equal to it
    tie = torch.nonzero(count_true(xt == v, 1) > room).squeeze(1)
    if tie.numel():  # topk chose among equal entries arbitrarily: take the first ones
        xr, vr = xt[tie], v[tie]
        eq = xr == vr
        sel = (xr > vr) | (eq & (eq.cumsum(1, dtype=torch.int32) <= room[tie].unsqueeze(1)))
        inds[tie] = torch.nonzero(sel)[:, 1].view(-1, k)
    rows = torch.arange(xt.shape[0], device=xt.device).repeat_interleave(k)
    return rows, inds.reshape(-1)


def bins_of(xt: Tensor, bounds: Tensor) -> Tensor:
    """Quantile bin [n, T] of activations `xt` [n, T]: b with bounds[b] <= x < bounds[b + 1]
    (the last bin open), -1 below bounds[0]; bounds [n, Q] ascending."""
    return (xt.unsqueeze(1) >= bounds.unsqueeze(2)).sum(1) - 1


def quantile_candidates(
    b: Tensor, qkey: Tensor, worst: Tensor, s: int, strict: bool
) -> tuple[Tensor, Tensor] | None:
    """Candidates for the quantile samples, or None when none can enter.

    `b` [n, T] are the sampled tokens' bins, `qkey` [T] their priorities, `worst` [n, Q] the
    largest priority each bin keeps (+inf while it keeps fewer than `s`). A token is a
    candidate when its priority is below its bin's worst (or equal, unless `strict`); each bin
    keeps its `s` smallest (priority, token). Returns (key [n * Q, c] = priority or +inf,
    tok [n * Q, c] index into the sampled tokens).
    """
    n, q = worst.shape
    w = torch.cat([worst.new_full((n, 1), -INF), worst], 1).gather(1, b + 1)  # [n, T]
    mask = qkey < w if strict else qkey <= w
    jt = torch.nonzero(mask)  # by node then token
    if jt.shape[0] == 0:
        return None
    tok = jt[:, 1]
    g = jt[:, 0] * q + b[jt[:, 0], tok]
    pk = qkey[tok]
    o = torch.argsort(pk, stable=True)  # ties keep token order
    o = o[torch.argsort(g[o], stable=True)]
    g, tok, pk = g[o], tok[o], pk[o]
    counts = torch.bincount(g, minlength=n * q)
    rank = torch.arange(len(g), device=g.device) - (counts.cumsum(0) - counts)[g]
    keep = rank < s
    c = min(s, int(counts.max()))
    key = torch.full((n * q, c), INF, dtype=qkey.dtype, device=qkey.device)
    out_tok = torch.zeros((n * q, c), dtype=torch.long, device=qkey.device)
    key[g[keep], rank[keep]] = pk[keep]
    out_tok[g[keep], rank[keep]] = tok[keep]
    return key, out_tok


def hist_counts(xt: Tensor, lo: Tensor, scale: Tensor, bins: int) -> Tensor:
    """[n, bins + 2] counts of `xt` [n, T] in equal bins from `lo` (`scale` bins per unit), with
    an underflow bin first and an overflow bin last."""
    n = xt.shape[0]
    u = (xt - lo.unsqueeze(1)).mul_(scale.unsqueeze(1))
    idx = u.floor_().clamp_(-1, bins).add_(1).long()
    idx += torch.arange(n, device=xt.device).unsqueeze(1) * (bins + 2)
    return torch.bincount(idx.view(-1), minlength=n * (bins + 2)).view(n, bins + 2)

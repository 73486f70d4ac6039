"""A TopK dictionary's activations kept sparse through a harvest batch.

A TopK SAE gives each token exactly k nonzero latents out of d_sae. `SparseRows` holds them as
[T, k] ids and values; the per-batch kernels that read every (token, node) cell of a dense group
have sparse twins here that read only the T·k entries, plus the known count of zeros:

* `moment_sums`: sums of d^p (d = x - shift) over the entries, plus (zeros) · (-shift)^p;
* `extrema`: the entries' min and max per node, and 0 wherever a node has a zero;
* `top_candidates`: per node, the tokens that may enter its top-k: all qualifying ones when at
  most k qualify, else the batch's best k by (value descending, token ascending), zeros being
  the earliest zero tokens. That is the dense kernel's candidate set exactly (tested), so the
  kept examples are identical.

Everything else a batch does reads few cells (windows, sampled rows), which `SparseRows` serves
by indexing (`x[tok, node]`, a binary search in the token's row) or as dense rows
(`index_select`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

INF = float("inf")
# Lookups of at least 1/DENSE_LOOKUPS of all cells are served from the dense rows, built once:
# a gather costs a few ns, a binary search ~40-90 ns.
DENSE_LOOKUPS = 64


@dataclass
class SparseRows:
    """Activations [T, n]: row t is `val[t]` at latents `idx[t]` (k distinct each), else 0."""

    idx: Tensor  # [T, k] int64
    val: Tensor  # [T, k] float32
    n: int
    _ids: Tensor | None = field(default=None, init=False, repr=False)  # ids sorted in each row
    _vals: Tensor | None = field(default=None, init=False, repr=False)  # their values
    _dense: Tensor | None = field(default=None, init=False, repr=False)  # for bulk lookups
    _entries: tuple[Tensor, Tensor, Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.idx.shape[0], self.n)

    def contiguous(self) -> SparseRows:
        return self

    def index_select(self, dim: int, rows: Tensor) -> Tensor:
        """Dense rows [len(rows), n]."""
        if dim != 0:
            raise ValueError("SparseRows selects rows only")
        out = self.val.new_zeros(rows.numel(), self.n)
        return out.scatter_(1, self.idx[rows], self.val[rows])

    def dense(self) -> Tensor:
        return self.index_select(0, torch.arange(self.shape[0], device=self.idx.device))

    def __getitem__(self, key: tuple[Tensor, Tensor]) -> Tensor:
        """Values at (token, node) pairs, broadcast like dense advanced indexing. Each row's k
        ids are kept sorted, so a lookup is a branchless binary search inside its row; bulk
        lookups (an early batch's windows) gather from dense rows instead."""
        tok, node = torch.broadcast_tensors(*key)
        if tok.numel() * DENSE_LOOKUPS >= self.shape[0] * self.n:  # (early batches' windows)
            if self._dense is None:
                self._dense = self.dense()
            return self._dense[tok, node]
        ids, vals = self._sorted()
        k = self.idx.shape[1]
        base = tok.reshape(-1) * k
        q = node.reshape(-1)
        lo = torch.zeros_like(base)
        size = k
        while size > 1:  # lo ends on the last id <= q (or 0)
            half = size // 2
            mid = lo + half
            lo = torch.where(ids[base + mid] <= q, mid, lo)
            size -= half
        at = base + lo
        return torch.where(ids[at] == q, vals[at], 0.0).view(tok.shape)

    def _sorted(self) -> tuple[Tensor, Tensor]:
        """Each row's ids sorted and their values, flattened."""
        if self._ids is None or self._vals is None:
            ids, order = self.idx.sort(1)
            self._ids = ids.reshape(-1)
            self._vals = self.val.gather(1, order).reshape(-1)
        return self._ids, self._vals

    def entries(self) -> tuple[Tensor, Tensor, Tensor]:
        """(node, token, value) of the nonzero entries, in token order (computed once)."""
        if self._entries is None:
            t, k = self.idx.shape
            keep = self.val.reshape(-1) != 0
            tok = torch.arange(t, device=self.idx.device).repeat_interleave(k)[keep]
            self._entries = (self.idx.reshape(-1)[keep], tok, self.val.reshape(-1)[keep])
        return self._entries


def moment_sums(x: SparseRows, shift: Tensor) -> Tensor:
    """[5, n] float64 like `batch_stats.moment_sums`: sums of d, d^2, d^3, d^4 and of [x > 0]."""
    node, _, v = x.entries()
    n = x.n
    count = torch.zeros(n, dtype=torch.float64, device=v.device).index_add_(
        0, node, torch.ones_like(v, dtype=torch.float64)
    )
    s = shift.double()
    d = v.double() - s[node]
    zeros = x.shape[0] - count
    out = torch.empty(5, n, dtype=torch.float64, device=v.device)
    for p in range(1, 5):
        out[p - 1] = zeros * (-s) ** p
        out[p - 1].index_add_(0, node, d**p)
    out[4] = torch.zeros(n, dtype=torch.float64, device=v.device).index_add_(
        0, node, (v > 0).double()
    )
    return out


def extrema(x: SparseRows) -> tuple[Tensor, Tensor]:
    """(min [n], max [n]) over the tokens, zeros included."""
    node, _, v = x.entries()
    n = x.n
    has_zero = torch.bincount(node, minlength=n) < x.shape[0]
    lo = v.new_full((n,), INF).scatter_reduce_(0, node, v, "amin")
    hi = v.new_full((n,), -INF).scatter_reduce_(0, node, v, "amax")
    zero = torch.zeros_like(lo)
    return torch.where(has_zero, lo.minimum(zero), lo), torch.where(has_zero, hi.maximum(zero), hi)


def top_candidates(
    x: SparseRows, kth: Tensor, k: int, strict: bool, context: tuple[int, int] = (1, 0)
) -> tuple[Tensor, Tensor] | None:
    """Candidates for each node's top-k, in `batch_stats.top_candidates`' format: (key [n, c] =
    -value or +inf, tok [n, c]). `kth` [n] is the node's current k-th best (-inf while it holds
    fewer than k); a token qualifies above it (or at it unless `strict`). `context` = (ctx, c):
    the first c tokens of every row of ctx never qualify."""
    n, t = x.n, x.shape[0]
    node, tok, v = x.entries()
    ok = v > kth[node] if strict else v >= kth[node]
    ctx, c = context
    if c:
        ok &= tok % ctx >= c
    node, tok, v = node[ok], tok[ok], v[ok]
    # best first: token order is already ascending; stable sorts by -value then by node
    o = torch.argsort(-v, stable=True)
    o = o[torch.argsort(node[o], stable=True)]
    node, tok, v = node[o], tok[o], v[o]
    counts = torch.bincount(node, minlength=n)
    rank = torch.arange(node.numel(), device=node.device) - (counts.cumsum(0) - counts)[node]
    keep = rank < k
    node, tok, v, rank = node[keep], tok[keep], v[keep], rank[keep]
    have = counts.clamp(max=k)
    zero_ok = kth < 0.0 if strict else kth <= 0.0
    need = torch.where(zero_ok, (k - have).clamp(min=0), 0).clamp(max=t)
    z_nodes = torch.nonzero(need).squeeze(1)
    z_node = z_tok = z_rank = node.new_zeros(0)
    if z_nodes.numel():
        z_node, z_tok, z_rank = _first_zero_tokens(x, z_nodes, need, have, k, context)
    node = torch.cat([node, z_node])
    if node.numel() == 0:
        return None
    tok, rank = torch.cat([tok, z_tok]), torch.cat([rank, z_rank])
    key_v = torch.cat([-v, torch.zeros(z_node.numel(), dtype=v.dtype, device=v.device)])
    c = int(rank.max()) + 1
    key = torch.full((n, c), INF, dtype=v.dtype, device=v.device)
    out_tok = torch.zeros((n, c), dtype=torch.long, device=v.device)
    key[node, rank] = key_v
    out_tok[node, rank] = tok
    return key, out_tok


def _first_zero_tokens(
    x: SparseRows,
    nodes: Tensor,
    need: Tensor,
    have: Tensor,
    k: int,
    context: tuple[int, int] = (1, 0),
) -> tuple[Tensor, Tensor, Tensor]:
    """(node, token, rank) of the first `need[j]` tokens at which node j is 0 (outside the first
    c tokens of each row, `context` = (ctx, c)), ranked after its `have[j]` positive candidates.
    They lie among the first 2k eligible tokens: a node needing zeros has fewer than k positive
    entries there. Those 2k lie in at most 2k // (ctx - c) + 1 rows, so among the first
    2k + c (2k // (ctx - c) + 2) tokens."""
    t = x.shape[0]
    ctx, c = context
    span = min(t, 2 * k if not c else 2 * k + c * (2 * k // max(ctx - c, 1) + 2))
    pos = torch.zeros(x.n, span, dtype=torch.bool, device=x.idx.device)
    head_idx, head_val = x.idx[:span], x.val[:span]
    rows = torch.arange(span, device=x.idx.device).unsqueeze(1).expand_as(head_idx)
    nz = head_val != 0
    pos[head_idx[nz], rows[nz]] = True
    if c:  # the rows' first c tokens are never candidates: mark them taken
        pos[:, torch.arange(span, device=pos.device) % ctx < c] = True
    free = ~pos[nodes]  # [z, span]: tokens where the node is 0
    order = free.to(torch.int32).cumsum(1)
    want = need[nodes].unsqueeze(1)
    take = free & (order <= want)
    zi, zt = torch.nonzero(take, as_tuple=True)
    rank = have[nodes][zi] + order[zi, zt] - 1
    return nodes[zi], zt, rank

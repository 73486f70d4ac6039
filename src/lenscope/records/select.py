"""Vectorised pieces of a harvest: exact k-selection by (key, position), context windows, attention.

Every example set is chosen by a total order: top examples by (activation descending, position
ascending), samples by (priority ascending, position ascending). A total order makes the k kept of
a union independent of how the union was split, so per-batch, per-shard and per-rank selections
merge exactly, in any order. Kept examples live in fixed slots; a merge only writes the slots
whose example was pushed out, so windows are gathered for newcomers only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lenscope.records.sparse import SparseRows

EMPTY = 1 << 62  # the position of an empty slot; sorts after every real position


def order(key: Tensor, pos: Tensor, k: int) -> Tensor:
    """Indices [..., k] of the k smallest (key, pos) pairs along the last dim, in that order."""
    o1 = torch.argsort(pos, dim=-1, stable=True)
    o2 = torch.argsort(key.gather(-1, o1), dim=-1, stable=True)
    return o1.gather(-1, o2)[..., :k]


def slot_merge(
    key: Tensor, pos: Tensor, new_key: Tensor, new_pos: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge candidates into slots [M, K] keeping the K smallest (key, pos) of each row.

    Writes the kept candidates' key and pos into the freed slots in place and returns
    (rows, slots, candidate columns) so callers can move the candidates' payloads the same way.
    Only rows whose best candidate can enter are sorted.
    """
    k = key.shape[1]
    worst = key.amax(1)
    rows = torch.nonzero(new_key.amin(1) <= worst).squeeze(1)
    if rows.numel() == 0:
        e = rows.new_zeros(0)
        return e, e, e
    ck = torch.cat([key[rows], new_key[rows]], 1)
    cp = torch.cat([pos[rows], new_pos[rows]], 1)
    keep = torch.zeros(ck.shape, dtype=torch.bool, device=key.device)
    keep.scatter_(1, order(ck, cp, k), True)
    fr, fc = torch.nonzero(~keep[:, :k], as_tuple=True)
    _, ec = torch.nonzero(keep[:, k:], as_tuple=True)
    r = rows[fr]
    key[r, fc] = new_key[r, ec]
    pos[r, fc] = new_pos[r, ec]
    return r, fc, ec


def sort_slots(key: Tensor, pos: Tensor) -> Tensor:
    """Slot order [M, K] by (key, pos): the presentation order of kept examples."""
    return order(key, pos, key.shape[-1])


def window_index(t: Tensor, ctx: int, offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Token indices [..., W] of the windows centred on batch tokens `t` (rows of `ctx` tokens).

    Offsets falling outside the token's row are clamped into it and flagged False in `valid`.
    """
    p = t % ctx
    w = p.unsqueeze(-1) + offsets
    valid = (w >= 0) & (w < ctx)
    return (t - p).unsqueeze(-1) + w.clamp(0, ctx - 1), valid


def node_windows(
    x: Tensor | SparseRows, nodes: Tensor, t: Tensor, ctx: int, offsets: Tensor
) -> Tensor:
    """Activations [M, W] of node `nodes[i]` around batch token `t[i]` (x: [tokens, nodes]);
    NaN outside the row."""
    idx, valid = window_index(t, ctx, offsets)
    return x[idx, nodes.unsqueeze(1)].masked_fill_(~valid, float("nan"))


def shared_windows(x: Tensor | SparseRows, t: Tensor, ctx: int, offsets: Tensor) -> Tensor:
    """Activations [n, m, W] of every node around the batch tokens `t` [m] (x: [tokens, n])."""
    idx, valid = window_index(t, ctx, offsets)
    out = x.index_select(0, idx.reshape(-1)).T.reshape(x.shape[1], *idx.shape)
    return out.masked_fill_(~valid, float("nan"))


def attention_rows(
    q: Tensor,
    k: Tensor,
    heads: Tensor,
    t: Tensor,
    scale: float,
    offsets: Tensor,
    sliding: int = 0,
) -> Tensor:
    """Attention [M, W] of head `heads[i]` from query token `t[i]` to the keys of its window.

    q, k: [batch, ctx, H, d_head] (k expanded to H heads, rotary applied). The pattern is
    recomputed for the chosen queries only: softmax over the causal keys of the query's row
    (only the last `sliding` of them for a sliding-window layer, as the model attends). Window
    keys after the query (or before its sliding window) get 0; keys outside the row get NaN.
    """
    ctx = q.shape[1]
    b, p = t // ctx, t % ctx
    qs = q[b, p, heads].float()  # [M, dh]
    ks = k[b, :, heads].float()  # [M, ctx, dh]
    scores = torch.einsum("md,mpd->mp", qs, ks) / scale
    keys = torch.arange(ctx, device=t.device)
    hidden = keys > p.unsqueeze(-1)
    if sliding:
        hidden |= p.unsqueeze(-1) - keys >= sliding
    pattern = scores.masked_fill(hidden, float("-inf")).softmax(-1)
    idx, valid = window_index(p, ctx, offsets)
    return pattern.gather(-1, idx).masked_fill_(~valid, float("nan"))


def head_norms(z: Tensor, gram: Tensor) -> Tensor:
    """|z_h W_O,h| per token and head: z [b, p, H, dh], gram [H, dh, dh] = W_O,h W_O,h^T."""
    zg = torch.einsum("bphi,hij->bphj", z, gram)
    return (zg * z).sum(-1).clamp_(min=0).sqrt_()

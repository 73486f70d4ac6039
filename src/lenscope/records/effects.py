"""Output-token effects from the weights: which tokens' logits a node's output pushes up or down.

Neuron: W_out[l, i] · W_U. Latent: W_dec[f] · W_U. Head: the OV circuit's direct path,
ln1(W_E[s]) · W_V · W_O · W_U, for source tokens s (the corpus's most frequent tokens), reported
as (source -> output) pairs. The final norm's weight is folded in (and, for LayerNorm, the
centring); its data-dependent scale is not, so values compare within a node, not across models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from lenscope.model import HookedTransformer
from lenscope.model.layers import Block
from lenscope.model.norms import push

_CHUNK = 1 << 24  # logits computed per step


@dataclass
class Effects:
    """Per node: top and bottom k output tokens (and, for heads, their source tokens)."""

    boost_ids: Tensor  # [n, k] int64
    boost_values: Tensor  # [n, k] float32
    suppress_ids: Tensor
    suppress_values: Tensor
    boost_sources: Tensor | None = None  # heads: [n, k] source token of each pair
    suppress_sources: Tensor | None = None


def fold_final_norm(model: HookedTransformer, x: Tensor) -> Tensor:
    """A write direction as the unembedding sees it, up to the final norm's positive scale."""
    return push(model.ln_final, None, x)


def _top_bottom(eff: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    tv, ti = eff.topk(k, dim=-1)
    bv, bi = eff.topk(k, dim=-1, largest=False)
    return ti, tv, bi, bv


@torch.no_grad()
def direction_effects(model: HookedTransformer, dirs: Tensor, k: int) -> Effects:
    """Effects of write directions `dirs` [n, d_model] (neurons' W_out rows, latents' W_dec)."""
    w_u = model.W_U.detach().float()
    k = min(k, w_u.shape[1])
    step = max(1, _CHUNK // w_u.shape[1])
    parts = []
    for i in range(0, dirs.shape[0], step):
        d = fold_final_norm(model, dirs[i : i + step].detach().float().to(w_u.device))
        parts.append(_top_bottom(d @ w_u, k))
    cat = [torch.cat([p[j] for p in parts]).cpu() for j in range(4)]
    return Effects(cat[0], cat[1], cat[2], cat[3])


@torch.no_grad()
def head_effects(model: HookedTransformer, layer: int, sources: Tensor, k: int) -> Effects:
    """Top and bottom (source -> output) pairs of each head's direct OV path through W_U.

    Factored through the head dimension: (ln1(W_E[s]) W_V + b_V) [S, dh] times
    fold(W_O) W_U [dh, V], so the cost is S * d_head * V per head.
    """
    block = cast(Block, model.blocks[layer])
    attn = block.attn
    w_u = model.W_U.detach().float()
    v_n = w_u.shape[1]
    src = block.ln1(model.W_E.detach()[sources.to(w_u.device)]).float()  # [S, d]
    w_v, b_v, w_o = attn.W_V.float(), attn.b_V.float(), attn.W_O.float()
    step = max(1, _CHUNK // v_n)
    out: list[list[Tensor]] = [[] for _ in range(6)]
    for h in range(model.cfg.n_heads):
        ovu = fold_final_norm(model, w_o[h]) @ w_u  # [dh, V]
        vals = src @ w_v[h] + b_v[h]  # [S, dh]
        best: list[tuple[Tensor, Tensor]] = []  # (values, flat index) per chunk
        worst: list[tuple[Tensor, Tensor]] = []
        for i in range(0, src.shape[0], step):
            eff = (vals[i : i + step] @ ovu).flatten()
            kk = min(k, eff.numel())
            tv, ti = eff.topk(kk)
            bv, bi = eff.topk(kk, largest=False)
            best.append((tv, ti + i * v_n))
            worst.append((bv, bi + i * v_n))
        for j, (chunks, largest) in enumerate(((best, True), (worst, False))):
            cv = torch.cat([c[0] for c in chunks])
            ci = torch.cat([c[1] for c in chunks])
            v, o = cv.topk(min(k, cv.numel()), largest=largest)
            flat = ci[o]
            out[3 * j].append((flat % v_n).cpu())
            out[3 * j + 1].append(v.cpu())
            out[3 * j + 2].append(sources.cpu()[flat // v_n])
    st = [torch.stack(x) for x in out]
    return Effects(st[0], st[1], st[3], st[4], st[2], st[5])

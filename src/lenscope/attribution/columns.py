"""Dense columns for every writer into the residual stream, one chunk (kind, layer) at a time.

Columns (internal names): `activation`, `write_norm`, `read` (the write dotted with a read field:
the direct effect for the question's read, an edge weight for a node's read) and `total`
(activation x gradient: the first-order effect of zeroing the node). Position chunks are
[b, p] or [b, p, n]; token-pair chunks (what a head moved from key k to query q) are [b, H, q, k].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture
from lenscope.attribution.experts import expert_outputs
from lenscope.attribution.frozen import pull, push
from lenscope.attribution.reads import (
    Read,
    latent_writes,
    post_pull,
    post_scale,
    upstream,
    writes_into,
)
from lenscope.nodes import NodeKind, latent_site

COLUMNS = ("activation", "write_norm", "read", "total")
# terms that are an alternative view of the stream (a spliced dictionary's bias and error): they
# are reported, but not added to the model's own direct total
VIEW_TERMS = (".sae_rest", ".error", ".b_dec")


def is_view_term(name: str) -> bool:
    return name.endswith(VIEW_TERMS)


@dataclass
class Chunk:
    kind: NodeKind
    layer: int | None
    site: str | None
    granularity: Literal["component", "position", "pair"]
    cols: dict[str, Tensor]
    hook: str | None = None  # latents: the SAE's hook


class _Rows:
    """The positions where a read field is non-zero (one or two for a question's own read):
    reads are computed there only and scattered back."""

    def __init__(self, R: Tensor) -> None:
        nz = R.abs().amax(dim=(0, 2)) > 0
        self.idx = nz.nonzero()[:, 0]
        self.sparse = int(self.idx.numel()) * 2 < R.shape[1]
        self.R = R.index_select(1, self.idx) if self.sparse else R

    def take(self, t: Tensor, dim: int = 1) -> Tensor:
        return t.index_select(dim, self.idx) if self.sparse else t

    def put(self, t: Tensor, shape: Sequence[int], dim: int = 1) -> Tensor:
        if not self.sparse:
            return t
        return t.new_zeros(tuple(shape)).index_copy_(dim, self.idx, t)


def _masked(cap: Capture, cols: dict[str, Tensor], pair: bool = False) -> dict[str, Tensor]:
    """Zero every column at padded positions (for token pairs: padded queries; padded keys and
    later keys already have zero attention)."""
    if cap.batch.mask is None:
        return cols
    v = cap.valid()
    out = {}
    for k, t in cols.items():
        m = v[:, None, :, None] if pair else v.reshape(*v.shape, *([1] * (t.ndim - 2)))
        out[k] = t * m.to(t.dtype)
    return out


def writer_chunks(cap: Capture, read: Read, full: bool = True) -> Iterator[Chunk]:
    """Every upstream writer's columns for `read` (only `read` when not `full`)."""
    rows = _Rows(read.field)
    embeds = [(NodeKind.EMBED, cap.embed, cap.g_embed), (NodeKind.POS, cap.pos_embed, cap.g_pos)]
    for kind, e, g in embeds:
        if e is None or g is None or not upstream(read, kind, None):
            continue
        cols = {"read": rows.put((rows.take(e) * rows.R).sum(-1), e.shape[:2])}
        if full:
            n = e.norm(dim=-1)
            cols |= {"activation": n, "write_norm": n, "total": (e * g).sum(-1)}
        yield Chunk(kind, None, None, "position", _masked(cap, cols))
    for lay in range(cap.n_up):
        if upstream(read, NodeKind.HEAD, lay):
            yield from _head_chunks(cap, lay, rows, full)
        if cap.model.cfg.num_experts and upstream(read, NodeKind.EXPERT, lay):
            yield _expert_chunk(cap, lay, rows, full)
        elif not cap.model.cfg.attn_only and upstream(read, NodeKind.NEURON, lay):
            yield _neuron_chunk(cap, lay, rows, full)
    for hook, lat in cap.latents.items():
        layer, site = latent_site(hook)
        outs = [h for h, order in latent_writes(cap, hook) if writes_into(read, order)]
        if not outs:
            continue
        src = lat.source
        RW = sum(rows.R @ src.decoder(h).to(rows.R.dtype).T for h in outs)
        assert isinstance(RW, torch.Tensor)
        sub = rows.take(lat.f) * rows.take(lat.scale) * RW
        cols = {"read": rows.put(sub, lat.f.shape)}
        if full:
            norm = torch.cat([d.to(rows.R.dtype) for d in src.decoders], 1).norm(dim=-1)
            cols |= {
                "activation": lat.f,
                "write_norm": lat.f.abs() * lat.scale * norm,
                "total": lat.f * lat.g_f,
            }
        yield Chunk(NodeKind.LATENT, layer, site, "position", _masked(cap, cols), hook)


def _sublayer_read(cap: Capture, lay: int, which: str, rows: _Rows) -> Tensor:
    """The read field at the rows, carried back through the sublayer's post-norm (if any) to
    what the sublayer computes: the writes of its nodes reach the stream through that norm."""
    ns = post_scale(cap, lay, which)
    return rows.R if ns is None else pull(ns[0], rows.take(ns[1]), rows.R)


def _write_gain(cap: Capture, lay: int, which: str) -> tuple[Tensor | None, Tensor | None]:
    """(the post-norm's weight, its scale [b, p]) that a write's norm is multiplied by and
    divided by on its way into the stream; (None, None) without a post-norm."""
    ns = post_scale(cap, lay, which)
    if ns is None:
        return None, None
    norm, s = ns
    assert norm.w is not None and not norm.centres
    return norm.w.detach().to(s.dtype), s[..., 0]


def _head_chunks(cap: Capture, lay: int, rows: _Rows, full: bool) -> Iterator[Chunk]:
    acts = cap.layers[lay]
    W_O = cap.w.W_O(lay)
    RO = torch.einsum("bpd,hed->bphe", _sublayer_read(cap, lay, "attn", rows), W_O)
    pos = {"read": rows.put((rows.take(acts.z) * RO).sum(-1), acts.z.shape[:3])}
    pair_read = rows.take(acts.pattern, 2) * torch.einsum("bqhe,bkhe->bhqk", RO, acts.v)
    pair = {"read": rows.put(pair_read, acts.pattern.shape, 2)}
    if full:
        gain, s = _write_gain(cap, lay, "attn")
        W_eff = W_O if gain is None else W_O * gain
        gram = W_eff @ W_eff.transpose(1, 2)  # [H, dh, dh]
        zn = torch.einsum("bphe,hef,bphf->bph", acts.z, gram, acts.z).clamp(min=0).sqrt()
        vn = torch.einsum("bkhe,hef,bkhf->bkh", acts.v, gram, acts.v).clamp(min=0).sqrt()
        pair_norm = acts.pattern * vn.permute(0, 2, 1)[:, :, None, :]
        if s is not None:  # a pair's write lands at its query, through that position's scale
            zn, pair_norm = zn / s[..., None], pair_norm / s[:, None, :, None]
        pos |= {
            "activation": acts.z.norm(dim=-1),
            "write_norm": zn,
            "total": (acts.z * acts.g_z).sum(-1),
        }
        pair |= {
            "activation": acts.pattern,
            "write_norm": pair_norm,
            "total": acts.pattern * torch.einsum("bqhe,bkhe->bhqk", acts.g_z, acts.v),
        }
    yield Chunk(NodeKind.HEAD, lay, None, "position", _masked(cap, pos))
    yield Chunk(NodeKind.HEAD, lay, None, "pair", _masked(cap, pair, pair=True))


def _neuron_chunk(cap: Capture, lay: int, rows: _Rows, full: bool) -> Chunk:
    acts = cap.layers[lay]
    assert acts.post is not None and acts.g_post is not None
    W_out = cap.w.mlp(lay)[2]
    R = _sublayer_read(cap, lay, "mlp", rows)
    cols = {"read": rows.put(rows.take(acts.post) * (R @ W_out.T), acts.post.shape)}
    if full:
        _, s = _write_gain(cap, lay, "mlp")
        norm = acts.post.abs() * cap.w.W_out_norms[lay]
        cols |= {
            "activation": acts.post,
            "write_norm": norm if s is None else norm / s[..., None],
            "total": acts.post * acts.g_post,
        }
    return Chunk(NodeKind.NEURON, lay, None, "position", _masked(cap, cols))


def _expert_chunk(cap: Capture, lay: int, rows: _Rows, full: bool) -> Chunk:
    """Experts `L{l}.E{e}` of a mixture: activation = router weight, write = weight x output."""
    acts = cap.layers[lay]
    assert acts.experts is not None and acts.g_experts is not None
    Y = expert_outputs(cap, lay)  # [b, p, E, d]
    R = _sublayer_read(cap, lay, "mlp", rows)
    sub = rows.take(acts.experts) * torch.einsum("bped,bpd->bpe", rows.take(Y), R)
    cols = {"read": rows.put(sub, acts.experts.shape)}
    if full:
        wrote = post_push_norm(cap, lay, Y)
        cols |= {
            "activation": acts.experts,
            "write_norm": acts.experts.abs() * wrote,
            "total": acts.experts * acts.g_experts,
        }
    return Chunk(NodeKind.EXPERT, lay, None, "position", _masked(cap, cols))


def post_push_norm(cap: Capture, lay: int, Y: Tensor) -> Tensor:
    """[b, p, E] the norm of each expert's output [b, p, E, d] as it lands in the stream."""
    ns = post_scale(cap, lay, "mlp")
    out: Tensor = Y.norm(dim=-1) if ns is None else push(ns[0], ns[1][:, :, None], Y).norm(dim=-1)
    return out


def bias_terms(cap: Capture, read: Read) -> dict[str, Tensor]:
    """[b] contributions of writes that are no node: attention and MLP output biases, and for each
    spliced SAE what its latents leave out of the stream (its bias and error; an alternative view,
    so it is reported apart: name ends with `.sae_rest`); for each transcoder its bias
    (`L3.transcoder.b_dec`) and error (`L3.transcoder.error`) where they are upstream."""
    R = read.field * cap.valid()[..., None].to(read.field.dtype)
    out: dict[str, Tensor] = {}
    cfg = cap.model.cfg
    for lay in range(cap.n_up):
        if upstream(read, NodeKind.HEAD, lay):
            out[f"L{lay}.b_O"] = post_pull(cap, lay, "attn", R).sum(1) @ cap.w.b_O(lay)
        if not (cfg.attn_only or cfg.num_experts) and upstream(read, NodeKind.NEURON, lay):
            b_out = cap.w.mlp(lay)[3]
            if b_out is not None:
                out[f"L{lay}.b_out"] = post_pull(cap, lay, "mlp", R).sum(1) @ b_out
    for hook, lat in cap.latents.items():
        layer, site = latent_site(hook)
        if lat.source.is_sae:
            if upstream(read, NodeKind.LATENT, layer, site):
                out[f"L{layer}.{site}.sae_rest"] = (lat.rest * R).sum((1, 2))
            continue
        for h, order in latent_writes(cap, hook):
            if not writes_into(read, order):
                continue
            for name, parts in (("b_dec", lat.biases), ("error", lat.errors)):
                if h in parts:
                    key = f"L{layer}.{site}.{name}"
                    v = (parts[h] * R).sum((1, 2))
                    out[key] = out[key] + v if key in out else v
    return out

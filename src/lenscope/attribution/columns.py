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
from lenscope.attribution.reads import Read, latent_writes, upstream, writes_into
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
        if not cap.model.cfg.attn_only and upstream(read, NodeKind.NEURON, lay):
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


def _head_chunks(cap: Capture, lay: int, rows: _Rows, full: bool) -> Iterator[Chunk]:
    acts = cap.layers[lay]
    W_O = cap.w.W_O(lay)
    RO = torch.einsum("bpd,hed->bphe", rows.R, W_O)
    pos = {"read": rows.put((rows.take(acts.z) * RO).sum(-1), acts.z.shape[:3])}
    pair_read = rows.take(acts.pattern, 2) * torch.einsum("bqhe,bkhe->bhqk", RO, acts.v)
    pair = {"read": rows.put(pair_read, acts.pattern.shape, 2)}
    if full:
        gram = W_O @ W_O.transpose(1, 2)  # [H, dh, dh]
        zn = torch.einsum("bphe,hef,bphf->bph", acts.z, gram, acts.z).clamp(min=0).sqrt()
        vn = torch.einsum("bkhe,hef,bkhf->bkh", acts.v, gram, acts.v).clamp(min=0).sqrt()
        pos |= {
            "activation": acts.z.norm(dim=-1),
            "write_norm": zn,
            "total": (acts.z * acts.g_z).sum(-1),
        }
        pair |= {
            "activation": acts.pattern,
            "write_norm": acts.pattern * vn.permute(0, 2, 1)[:, :, None, :],
            "total": acts.pattern * torch.einsum("bqhe,bkhe->bhqk", acts.g_z, acts.v),
        }
    yield Chunk(NodeKind.HEAD, lay, None, "position", _masked(cap, pos))
    yield Chunk(NodeKind.HEAD, lay, None, "pair", _masked(cap, pair, pair=True))


def _neuron_chunk(cap: Capture, lay: int, rows: _Rows, full: bool) -> Chunk:
    acts = cap.layers[lay]
    assert acts.post is not None and acts.g_post is not None
    W_out = cap.w.mlp(lay)[2]
    cols = {"read": rows.put(rows.take(acts.post) * (rows.R @ W_out.T), acts.post.shape)}
    if full:
        cols |= {
            "activation": acts.post,
            "write_norm": acts.post.abs() * cap.w.W_out_norms[lay],
            "total": acts.post * acts.g_post,
        }
    return Chunk(NodeKind.NEURON, lay, None, "position", _masked(cap, cols))


def bias_terms(cap: Capture, read: Read) -> dict[str, Tensor]:
    """[b] contributions of writes that are no node: attention and MLP output biases, and for each
    spliced SAE what its latents leave out of the stream (its bias and error; an alternative view,
    so it is reported apart: name ends with `.sae_rest`); for each transcoder its bias
    (`L3.transcoder.b_dec`) and error (`L3.transcoder.error`) where they are upstream."""
    R = read.field * cap.valid()[..., None].to(read.field.dtype)
    total_read = R.sum(1)  # [b, d]
    out: dict[str, Tensor] = {}
    for lay in range(cap.n_up):
        if upstream(read, NodeKind.HEAD, lay):
            out[f"L{lay}.b_O"] = total_read @ cap.w.b_O(lay)
        if not cap.model.cfg.attn_only and upstream(read, NodeKind.NEURON, lay):
            b_out = cap.w.mlp(lay)[3]
            if b_out is not None:
                out[f"L{lay}.b_out"] = total_read @ b_out
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

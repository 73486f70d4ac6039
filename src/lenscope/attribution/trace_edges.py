"""Tracing: which earlier nodes drive a node's input (upstream), which later nodes and output tokens
its write feeds (downstream). Edge weight = a write dotted with a read field (frozen norms).

Upstream along a path [N1, N2, ..., Nk] (each hop upstream of the one before): N1's read field comes
from the question's gradient at N1's activation; every later hop's from the gradient of its write
dotted with the previous hop's read field, i.e. only through the path. Edges into Nk from all its
writers then sum (with the bias terms) to Nk's input times that gradient. Heads are traced through
their query, key or value separately (`via`), or all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import Chunk, bias_terms, writer_chunks
from lenscope.attribution.experts import expert_inputs, expert_outputs, weighted_experts
from lenscope.attribution.frozen import norm_scale, push
from lenscope.attribution.reads import (
    FINAL,
    Read,
    combined,
    expert_read,
    head_input_grads,
    head_own_term,
    head_read,
    latent_input,
    latent_read,
    latent_read_site,
    latent_writes,
    neuron_input_grads,
    neuron_read,
    neuron_read_order,
    post_pull,
    post_push,
    question_reads,
    scale1,
    scale2,
    upstream,
    write_grad,
    write_order,
)
from lenscope.errors import InputError
from lenscope.interventions.plan import check_node
from lenscope.nodes import NodeId, NodeKind, latent_site

VIAS = ("q", "k", "v")


def _node_mask(cap: Capture, node: NodeId, like: Tensor) -> Tensor:
    """Mask [b, p, units] selecting the node's unit (and position) in an activation like `like`
    ([b, p, H, dh] for heads: broadcast over dh)."""
    m = torch.zeros(like.shape[:3], dtype=like.dtype, device=like.device)
    pos = slice(None) if node.position is None else node.position
    m[:, pos, node.index] = 1.0
    return m[..., None] if like.ndim == 4 else m


def _pair_keep(cap: Capture, node: NodeId) -> Tensor | None:
    if node.key_position is None:
        if node.position is None:
            return None
        keep = torch.zeros_like(cap.layers[node.layer or 0].pattern)
        keep[:, :, node.position, :] = 1.0
        return keep
    keep = torch.zeros_like(cap.layers[node.layer or 0].pattern)
    keep[:, node.index, node.position, node.key_position] = 1.0
    return keep


def node_reads(
    cap: Capture, node: NodeId, field: Tensor | None, order: float = FINAL
) -> dict[str, Read]:
    """A node's read fields (per input: "q", "k", "v" for heads, "in" otherwise), from the global
    gradient (`field` None) or through the path whose next read field is `field` (read at
    stream `order`)."""
    if node.kind in (NodeKind.EMBED, NodeKind.POS):
        raise InputError(f"{node} is an embedding: it reads nothing, so there is nothing upstream")
    lay = node.layer or 0
    if node.kind is NodeKind.HEAD:
        acts = cap.layers[lay]
        g = acts.g_z if field is None else write_grad(cap, node, field)
        g_z = g * _node_mask(cap, node, acts.z)
        grads = head_input_grads(cap, lay, g_z=g_z, keep=_pair_keep(cap, node))
        order = 4.0 * lay + 0.5
        return {
            v: Read(
                head_read(cap, lay, grads, v),
                order,
                None,
                {f"{node.component}.b_{v.upper()}": head_own_term(cap, lay, grads, v)},
            )
            for v in VIAS
        }
    if node.kind is NodeKind.NEURON:
        acts = cap.layers[lay]
        assert acts.g_post is not None and acts.post is not None
        g = acts.g_post if field is None else write_grad(cap, node, field)
        g_post = g * _node_mask(cap, node, acts.post)
        f, own = neuron_read(cap, lay, g_post)
        return {"in": Read(f, neuron_read_order(cap, lay), None, {f"{node.component}.b_in": own})}
    if node.kind is NodeKind.EXPERT:
        acts = cap.layers[lay]
        assert acts.experts is not None
        G = moe_out_grad(cap, lay) if field is None else post_pull(cap, lay, "mlp", field)
        g_out = G[:, :, None, :] * _node_mask(cap, node, acts.experts)[..., None]
        return {"in": Read(expert_read(cap, lay, g_out), neuron_read_order(cap, lay), None, {})}
    lat = cap.latents[node.hook_name]
    g = lat.g_f if field is None else write_grad(cap, node, field, order)
    g_f = g * _node_mask(cap, node, lat.f)
    at, restrict = latent_read_site(cap, node.hook_name)
    return {"in": Read(latent_read(cap, node.hook_name, g_f), at, restrict)}


def path_reads(cap: Capture, path: Sequence[tuple[NodeId, str | None]]) -> dict[str, Read]:
    """Read fields of the last hop of `path`, restricted to the path."""
    if not path:
        raise InputError("give at least one node to trace")
    field: Tensor | None = None
    prev: Read | None = None
    reads: dict[str, Read] = {}
    n = min(cap.batch.lengths)
    for i, (node, via) in enumerate(path):
        check_node(cap.model, node, cap.sources, n)
        if node.kind is NodeKind.HEAD and node.layer is not None and node.layer >= cap.n_up:
            raise InputError(f"{node} does not act on the question (it comes after it)")
        if via is not None and (node.kind is not NodeKind.HEAD or via not in VIAS):
            raise InputError(f"{node}: only heads are traced through q, k or v (got {via!r})")
        if prev is not None and not upstream(prev, node.kind, node.layer, node.site):
            raise InputError(f"{node} is not upstream of {path[i - 1][0]}: it cannot feed it")
        reads = node_reads(cap, node, field, FINAL if prev is None else prev.order)
        if node.kind is NodeKind.HEAD and via is not None:
            reads = {via: reads[via]}
        prev = combined_all(reads)
        field = prev.field
    return reads


def combined_all(reads: dict[str, Read]) -> Read:
    out: Read | None = None
    for r in reads.values():
        out = r if out is None else combined(out, r)
    assert out is not None
    return out


def upstream_chunks(cap: Capture, reads: dict[str, Read]) -> Iterator[Chunk]:
    """Writer chunks with an `edge` column (sum over the reads) and one column per read."""
    gens = [writer_chunks(cap, r, full=False) for r in reads.values()]
    for parts in zip(*gens, strict=True):
        cols = {name: p.cols["read"] for name, p in zip(reads, parts, strict=True)}
        first = parts[0]
        edge = torch.zeros_like(first.cols["read"])
        for t in cols.values():
            edge = edge + t
        cols["edge"] = edge
        yield Chunk(first.kind, first.layer, first.site, first.granularity, cols, first.hook)


def upstream_terms(cap: Capture, reads: dict[str, Read]) -> dict[str, Tensor]:
    """Writer biases (b_O, b_out, SAE rests) and the traced node's own input biases."""
    out: dict[str, Tensor] = {}
    for r in reads.values():
        for k, v in {**bias_terms(cap, r), **r.terms}.items():
            out[k] = out[k] + v if k in out else v
    return out


# ---- downstream ---------------------------------------------------------------------------------
def node_write(cap: Capture, node: NodeId) -> Tensor:
    """What the node writes into the stream at each position [b, p, d]."""
    lay = node.layer or 0
    if node.kind in (NodeKind.EMBED, NodeKind.POS):
        e = cap.embed if node.kind is NodeKind.EMBED else cap.pos_embed
        assert e is not None
        w = e.clone()
    elif node.kind is NodeKind.HEAD:
        acts = cap.layers[lay]
        W_O = cap.w.W_O(lay)[node.index or 0]
        if node.key_position is not None:
            a = acts.pattern[:, node.index, node.position, node.key_position]
            vk = acts.v[:, node.key_position, node.index] @ W_O
            w = torch.zeros_like(acts.resid_pre)
            w[:, node.position] = a[:, None] * vk
            return post_push(cap, lay, "attn", w)
        w = post_push(cap, lay, "attn", acts.z[:, :, node.index] @ W_O)
    elif node.kind is NodeKind.NEURON:
        acts = cap.layers[lay]
        assert acts.post is not None
        w = acts.post[:, :, node.index or 0, None] * cap.w.mlp(lay)[2][node.index or 0]
        w = post_push(cap, lay, "mlp", w)
    elif node.kind is NodeKind.EXPERT:
        acts = cap.layers[lay]
        assert acts.experts is not None
        ex = node.index or 0
        w = acts.experts[:, :, ex, None] * expert_outputs(cap, lay)[:, :, ex]
        w = post_push(cap, lay, "mlp", w)
    else:
        lat = cap.latents[node.hook_name]
        if len(latent_writes(cap, node.hook_name)) > 1:
            raise InputError(
                f"{node} writes into several layers' MLP outputs; trace a cross-layer "
                "transcoder's latents upstream, not downstream"
            )
        W = lat.source.decoders[0].to(lat.f.dtype)[node.index or 0]
        w = (lat.f[:, :, node.index or 0, None] * lat.scale) * W
    if node.position is not None:
        keep = torch.zeros_like(w[..., :1])
        keep[:, node.position] = 1.0
        w = w * keep
    return w * cap.valid()[..., None].to(w.dtype)


def downstream_chunks(cap: Capture, node: NodeId, w: Tensor) -> Iterator[Chunk]:
    """Later readers of write `w`: heads (via q, k, v), neurons, SAE latents, with `edge`."""
    after = write_order(node.kind, node.layer, node.site)
    for lay in range(cap.n_up):
        if 4.0 * lay + 0.5 > after:
            x = push(cap.w.ln1(lay), scale1(cap, lay), w)
            grads = head_input_grads(cap, lay, g_z=cap.layers[lay].g_z)
            mats = (cap.w.W_Q(lay), cap.w.W_K(lay), cap.w.W_V(lay))
            cols = {
                v: (torch.einsum("bpd,hde->bphe", x, W) * g).sum(-1)
                for v, W, g in zip(VIAS, mats, grads, strict=True)
            }
            cols["edge"] = cols["q"] + cols["k"] + cols["v"]
            yield Chunk(NodeKind.HEAD, lay, None, "position", cols)
        if cap.model.cfg.num_experts and neuron_read_order(cap, lay) > after:
            x = push(cap.w.ln2(lay), scale2(cap, lay), w)
            edge = expert_edges(cap, lay, x)
            yield Chunk(NodeKind.EXPERT, lay, None, "position", {"edge": edge.detach()})
        elif not cap.model.cfg.attn_only and neuron_read_order(cap, lay) > after:
            acts = cap.layers[lay]
            assert acts.g_post is not None
            g_pre, g_lin = neuron_input_grads(cap, lay, acts.g_post)
            W_in, W_gate, _, _ = cap.w.mlp(lay)
            x = push(cap.w.ln2(lay), scale2(cap, lay), w)
            if W_gate is None:
                edge = (x @ W_in) * g_pre
            else:
                assert g_lin is not None
                edge = (x @ W_gate) * g_pre + (x @ W_in) * g_lin
            yield Chunk(NodeKind.NEURON, lay, None, "position", {"edge": edge})
    for hook, lat in cap.latents.items():
        order, restrict = latent_read_site(cap, hook)
        layer, site = latent_site(hook)
        reads_it = (restrict is None and order > after) or (
            restrict is not None and (node.kind, node.layer) == restrict
        )
        if not reads_it:
            continue
        src = lat.source
        x0 = lat.x.to(src.decoders[0].dtype)
        dx = latent_input(cap, hook, w).to(x0.dtype)
        df = torch.func.jvp(src.encode, (x0,), (dx,))[1]
        edge = df.detach().to(w.dtype) * lat.g_f
        yield Chunk(NodeKind.LATENT, layer, site, "position", {"edge": edge}, hook)


def expert_edges(cap: Capture, layer: int, x: Tensor) -> Tensor:
    """[b, p, E] each expert's edge from a write reaching the mixture's input as `x`: the
    derivative of `w_e(x) (y_e(x) . G)` along x (forward mode), G the gradient at its output."""
    G = moe_out_grad(cap, layer)
    x0 = expert_inputs(cap, layer)
    out: Tensor = torch.func.jvp(lambda t: weighted_experts(cap, layer, t, G), (x0,), (x,))[1]
    return out.detach()


def moe_out_grad(cap: Capture, layer: int) -> Tensor:
    """[b, p, d] the value's gradient at a mixture's output (its post-norm's scale frozen)."""
    g = cap.layers[layer].g_mlp_out
    assert g is not None
    return post_pull(cap, layer, "mlp", g)


def output_effects(cap: Capture, node: NodeId, w: Tensor) -> tuple[int, Tensor] | None:
    """(position, logit change [b, V]) of the node's write read straight through the final norm,
    at the answer position if the node writes there, else at its own position."""
    if cap.final is None:
        return None
    b = 0
    pos = cap.answer[b]
    if float(w[b, pos].abs().sum()) == 0.0 and node.position is not None:
        pos = node.position
    x = cap.final[:, pos]
    dl = push(cap.w.ln_final, norm_scale(cap.w.ln_final, x), w[:, pos]) @ cap.w.W_U
    return pos, dl


def question_read(cap: Capture) -> Read:
    q, k = question_reads(cap)
    return combined(q, k)

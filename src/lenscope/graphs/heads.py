"""Edges that travel through attention, split by the head that carried them (6b).

Every path from a source's write (position p) to a target either never leaves position p, or
leaves it first through one attention head (l, h) reading p as a key. In the frozen model the
paths whose first head is (l, h) carry

    part(l, h) = w . pull_ln1_l( W_V[l, h] @ gv_h[p] ),   gv_h[p] = sum_q A[h, q, p] gz_h[q]

where w is the source's write, gz_h the target's gradient at head h's output z (hook_z) and A the
frozen pattern: only heads of layers after the source count (every layer for an embedding). For a
source at another position than its target (and transcoders without a skip, whose MLP path could
move a write before a head reads it) the parts add up to the edge exactly; `edge_heads` gives
the parts of chosen edges, and `carrier` names the head with the largest part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from lenscope.graphs.replacement import ReplacementModel, RunOut, mlp_hook
from lenscope.graphs.result import Graph
from lenscope.model.layers import Block
from lenscope.model.norms import pull
from lenscope.nodes import head_node_id

Parts = dict[tuple[int, int], Tensor]  # (target, source) -> [n_layers, n_heads]


def edge_heads(rm: ReplacementModel, graph: Graph, pairs: Sequence[tuple[int, int]]) -> Parts:
    """The per-head parts [n_layers, n_heads] of each (target, source) edge of `graph` (built
    on the prompt `rm` holds)."""
    if not pairs:
        return {}
    model = rm.model
    L, H = rm.n_layers, model.cfg.n_heads
    zs: dict[int, Tensor] = {}

    def keep(layer: int) -> Callable[[Tensor, object], None]:
        def fn(x: Tensor, _h: object) -> None:
            zs[layer] = x

        return fn

    out = rm.run(grad=True, hooks=[(f"blocks.{i}.attn.hook_z", keep(i)) for i in range(L)])
    targets = sorted({t for t, _ in pairs})
    gz: dict[int, list[Tensor]] = {}
    for t in targets:
        value = _target_value(rm, graph, out, t)
        g = torch.autograd.grad(
            value,
            [zs[i] for i in range(L)],
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        gz[t] = [x.detach()[0] for x in g]  # each [n, H, dh]
    blocks: list[Block] = list(model.blocks)  # type: ignore[arg-type]
    result: Parts = {}
    for t, s in pairs:
        layer_s, pos, w = _write(rm, graph, s)
        parts = torch.zeros(L, H)
        for layer in range(layer_s + 1, L):
            A = rm.frozen[f"blocks.{layer}.attn.hook_pattern"][0]  # [H, n, n]
            gv = torch.einsum("hq,qhd->hd", A[:, :, pos], gz[t][layer])  # [H, dh]
            attn = blocks[layer].attn
            back = torch.einsum("hed,hd->he", attn.W_V.detach(), gv)  # [H, d]
            scale = (
                rm.frozen[f"blocks.{layer}.ln1.hook_scale"][0, pos]
                if f"blocks.{layer}.ln1.hook_scale" in rm.frozen
                else torch.ones(1)
            )
            parts[layer] = (pull(blocks[layer].ln1, scale, back) * w).sum(-1)
        result[(t, s)] = parts
    return result


def carrier(parts: Tensor) -> str:
    """The head with the largest |part|, as a node id (L1.H3)."""
    i = int(parts.abs().flatten().argmax())
    return head_node_id(*divmod(i, parts.shape[1]))


def _target_value(rm: ReplacementModel, graph: Graph, out: RunOut, t: int) -> Tensor:
    logits, inputs = out.logits, out.inputs
    if graph.node_type(t) == "logit":
        read = graph.targets[t - graph.target_slice.start].read.to(logits.dtype)
        value: Tensor = read @ logits[-1]
        return value
    layer, pos, idx = graph.place(t)
    assert layer is not None and idx is not None
    enc = rm.sources[layer].enc
    return inputs[layer][pos] @ enc.W[:, idx].to(logits.dtype)


def _write(rm: ReplacementModel, graph: Graph, s: int) -> tuple[int, int, Tensor]:
    """(the layer after which the write exists, its position, the write [d]) of source s; for a
    cross-layer feature only its write at its own layer is split (its later writes are not)."""
    kind = graph.node_type(s)
    layer, pos, idx = graph.place(s)
    if kind == "embedding":
        return -1, pos, rm.embed[pos]
    if kind == "error":
        assert layer is not None
        return layer, pos, rm.error[layer][pos]
    assert layer is not None and idx is not None
    src = rm.sources[layer]
    dec = src.dic.decoder(mlp_hook(layer))
    return layer, pos, src.acts[pos, idx] * src.scale[pos, 0] * dec[idx]

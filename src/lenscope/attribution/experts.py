"""Experts of a mixture-of-experts MLP (Mixtral) as debugger nodes.

Expert e of layer l (`L{l}.E{e}`) writes `w_e * y_e` at each position: its router weight
(`blocks.{l}.mlp.hook_expert_weights`, zero where the router did not choose it) times its own
gated MLP's output. The layer's MLP output is the sum of these writes, so the experts' direct
effects add up to the MLP's exactly; zeroing an expert's weight removes its write and nothing
else (the other weights are not renormalised), which is what a measured ablation does.

A shared expert (Qwen2-MoE) is the mixture's last expert, `L{l}.E{num_experts}`: its weight is
its sigmoid gate, non-zero at every position.

The expert's *input* is the MLP's input (the stream through `ln2`, scale frozen): both the
router and the expert read it, so its read field is the gradient of `w_e(x) * (y_e(x) . G)`
with respect to that input, where G is the gradient at the MLP's output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture
from lenscope.model.norms import normalize


def expert_inputs(cap: Capture, layer: int) -> Tensor:
    """[b, p, d] what the mixture reads: the stream through `ln2` (cached)."""
    key = f"moe_in.{layer}"
    if key not in cap.cache:
        x = cap.layers[layer].ln2_in
        assert x is not None
        cap.cache[key] = normalize(cap.w.ln2(layer), x).detach()
    return cap.cache[key]


def expert_outputs(cap: Capture, layer: int) -> Tensor:
    """[b, p, E, d] each expert's output before its router weight, computed at the positions
    that weigh it (zero elsewhere, where its write is zero anyway); cached."""
    key = f"moe_out.{layer}"
    if key not in cap.cache:
        x = expert_inputs(cap, layer)
        weights = cap.layers[layer].experts
        assert weights is not None
        moe = cap.w.moe(layer)
        dt = moe.W_gate.dtype
        flat = x.reshape(-1, x.shape[-1])
        out = x.new_zeros(flat.shape[0], weights.shape[-1], x.shape[-1])
        with torch.no_grad():
            for e in range(weights.shape[-1]):
                rows = weights.reshape(-1, weights.shape[-1])[:, e].nonzero().squeeze(-1)
                if rows.numel():
                    out[rows, e] = cap.w.expert(layer, e)(flat[rows].to(dt)).to(x.dtype)
        cap.cache[key] = out.reshape(*x.shape[:2], weights.shape[-1], x.shape[-1])
    return cap.cache[key]


def router_weights(cap: Capture, layer: int, x: Tensor) -> Tensor:
    """[b, p, E] the router's weights at input x, differentiable in x, with the choice of
    experts held at the captured one (an expert it did not choose has weight zero)."""
    moe = cap.w.moe(layer)
    chosen = cap.layers[layer].experts
    assert chosen is not None
    n = moe.cfg.num_experts
    logits = x.to(moe.W_gate.dtype) @ moe.W_gate.detach()
    probs = torch.softmax(logits.float(), dim=-1)
    kept = probs * (chosen[..., :n] != 0).to(probs.dtype)
    if moe.cfg.experts_renormalize:
        kept = kept / kept.sum(-1, keepdim=True).clamp_min(1e-30)
    out = kept.to(x.dtype)
    if moe.W_shared_gate is not None:  # the shared expert: a sigmoid gate, at every position
        shared = torch.sigmoid(x.to(moe.W_gate.dtype) @ moe.W_shared_gate.detach())
        out = torch.cat([out, shared.to(x.dtype)], dim=-1)
    return out


def weighted_experts(cap: Capture, layer: int, x: Tensor, G: Tensor) -> Tensor:
    """[b, p, E] `w_e(x) * (y_e(x) . G)` for every expert, differentiable in x."""
    moe = cap.w.moe(layer)
    dt = moe.W_gate.dtype
    w = router_weights(cap, layer, x)
    ys = [cap.w.expert(layer, e)(x.to(dt)).to(x.dtype) for e in range(w.shape[-1])]
    return w * torch.stack([(y * G).sum(-1) for y in ys], dim=-1)

"""A mixture-of-experts MLP (Mixtral's sparse block) with the router and every expert hookable.

A router `W_gate` [d_model, num_experts] (TransformerLens' name) scores the experts at each
position; the softmax of the scores, kept at the `experts_per_token` best and renormalised to sum
to 1 (unless `cfg.experts_renormalize` is off: Qwen3-MoE without `norm_topk_prob`), weighs the
outputs of those experts, each a gated MLP (`lenscope.model.layers.MLP`, which
the block builds and hands over, so that this module does not import the layers).

Hook points, under `blocks.{l}.mlp.`:
- `hook_router_logits` [batch, pos, num_experts]: the router's scores;
- `hook_expert_weights` [batch, pos, num_experts]: each expert's weight in the output, zero for
  the experts not chosen (setting a weight to zero removes that expert at that position; a
  non-zero weight runs the expert there); with a shared expert (Qwen2-MoE, `cfg.d_mlp_shared`)
  one more column, the last: the shared expert's weight, `sigmoid(x @ W_shared_gate)`, at
  every position;
- `experts.{e}.hook_pre|hook_pre_linear|hook_post` [batch, pos, d_mlp]: expert e's activations.
An expert with none of its hooks active runs only at the positions that weigh it (as
`transformers` does); a hooked expert runs at every position, so that its hooks see the usual
[batch, pos, d_mlp] shapes, and still adds to the output only where its weight is non-zero.
"""

from __future__ import annotations

from typing import Protocol, cast

import torch
from torch import Tensor, nn

from lenscope.errors import CheckpointError
from lenscope.linalg import linear
from lenscope.model.config import ModelConfig
from lenscope.model.hooks import HookPoint


class Expert(Protocol):
    """What the block hands over as an expert: a gated MLP with its three hook points."""

    hook_pre: HookPoint
    hook_pre_linear: HookPoint
    hook_post: HookPoint

    def __call__(self, x: Tensor) -> Tensor: ...


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig, experts: list[nn.Module]) -> None:
        super().__init__()
        want = cfg.num_experts + (1 if cfg.d_mlp_shared else 0)
        if len(experts) != want:
            raise CheckpointError(f"{len(experts)} experts given, config has {want}")
        self.cfg = cfg
        self.W_gate = nn.Parameter(torch.empty(cfg.d_model, cfg.num_experts))
        self.W_shared_gate = nn.Parameter(torch.empty(cfg.d_model, 1)) if cfg.d_mlp_shared else None
        self.experts = nn.ModuleList(experts)
        self.hook_router_logits = HookPoint()
        self.hook_expert_weights = HookPoint()

    def _experts(self) -> list[Expert]:
        return [cast(Expert, e) for e in self.experts]

    def expert_weights(self, x: Tensor) -> Tensor:
        """x [..., d_model] -> each expert's weight [..., num_experts] (zero unless chosen)."""
        logits = self.hook_router_logits.run(linear(x, self.W_gate))
        probs = torch.softmax(logits.float(), dim=-1)
        top, idx = probs.topk(self.cfg.experts_per_token, dim=-1)
        if self.cfg.experts_renormalize:
            top = top / top.sum(-1, keepdim=True)
        dense = torch.zeros_like(probs).scatter(-1, idx, top).to(x.dtype)
        if self.W_shared_gate is not None:
            shared = torch.sigmoid(linear(x, self.W_shared_gate))
            dense = torch.cat([dense, shared.to(x.dtype)], dim=-1)
        return self.hook_expert_weights.run(dense)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.expert_weights(x)
        out = torch.zeros_like(x)
        flat_x, flat_w, flat_out = (
            x.reshape(-1, x.shape[-1]),
            weights.reshape(-1, weights.shape[-1]),
            out.view(-1, x.shape[-1]),
        )
        for e, expert in enumerate(self._experts()):
            w = flat_w[:, e]
            rows = w.nonzero().squeeze(-1)
            if rows.numel() == 0 and not _hooked(expert):
                continue
            if _hooked(expert):
                y = expert(x).reshape(-1, x.shape[-1])[rows]
            else:
                y = expert(flat_x[rows])
            flat_out.index_add_(0, rows, y * w[rows, None])
        return out


def _hooked(expert: Expert) -> bool:
    return expert.hook_pre.active or expert.hook_pre_linear.active or expert.hook_post.active

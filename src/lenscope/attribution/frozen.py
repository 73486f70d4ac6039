"""The linear algebra the debugger rests on: normalisations with their scale frozen, and weights.

With its scale frozen, a LayerNorm/RMSNorm is affine in its input, so whatever reads the residual
stream through it (the unembedding, a head's Q/K/V, an MLP's input) is linear in every write into
the stream: that is what makes direct effects and edge attributions add up exactly.
`push(w)` is a write's share of the norm's output; `pull(g)` carries a gradient at the norm's
output back to the stream; `push(w) . g == w . pull(g)`. Both, and `norm_scale`, live in
`lenscope.model.norms` (re-exported here for the engine's modules).
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from lenscope.model.layers import MLP, Block
from lenscope.model.moe import MoE
from lenscope.model.norms import Norm, norm_scale, pull, push
from lenscope.model.transformer import HookedTransformer

__all__ = ["Weights", "norm_scale", "pull", "push"]


class Weights:
    """Per-layer weight views in TransformerLens shapes, made once per request, detached."""

    def __init__(self, model: HookedTransformer, dtype: torch.dtype) -> None:
        self.model = model
        self.dtype = dtype
        self.blocks: list[Block] = list(model.blocks)  # type: ignore[arg-type]

    def _t(self, t: Tensor) -> Tensor:
        return t.detach().to(self.dtype)

    def W_O(self, layer: int) -> Tensor:  # [H, dh, d]
        return self._t(self.blocks[layer].attn.W_O)

    def b_O(self, layer: int) -> Tensor:
        return self._t(self.blocks[layer].attn.b_O)

    def W_Q(self, layer: int) -> Tensor:  # [H, d, dh]
        return self._t(self.blocks[layer].attn.W_Q)

    def W_K(self, layer: int) -> Tensor:  # [H, d, dh] (expanded for grouped-query attention)
        return self._t(self.blocks[layer].attn.W_K)

    def W_V(self, layer: int) -> Tensor:
        return self._t(self.blocks[layer].attn.W_V)

    def b_V(self, layer: int) -> Tensor:
        return self._t(self.blocks[layer].attn.b_V)

    def b_in(self, layer: int) -> Tensor | None:
        m = self.blocks[layer].dense_mlp()
        return None if m is None or m.b_in is None else self._t(m.b_in)

    def b_Q(self, layer: int) -> Tensor:  # [H, dh]
        return self._t(self.blocks[layer].attn.b_Q)

    def b_K(self, layer: int) -> Tensor:
        return self._t(self.blocks[layer].attn.b_K)

    def mlp(self, layer: int) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """(W_in [d, m], W_gate [d, m] | None, W_out [m, d], b_out [d] | None)."""
        m = self.blocks[layer].dense_mlp()
        assert m is not None
        gate = None if m.W_gate is None else self._t(m.W_gate)
        b_out = None if m.b_out is None else self._t(m.b_out)
        return self._t(m.W_in), gate, self._t(m.W_out), b_out

    @cached_property
    def W_out_norms(self) -> list[Tensor]:  # per layer [m]: the norm of each neuron's write
        cfg = self.model.cfg
        if cfg.attn_only or cfg.num_experts:
            return []
        out = []
        for i in range(len(self.blocks)):
            post = self.post_norm(i, "mlp")
            W = self.mlp(i)[2]
            out.append((W if post is None else push(post, None, W)).norm(dim=-1))
        return out

    def moe(self, layer: int) -> MoE:
        m = self.blocks[layer].mlp
        assert isinstance(m, MoE)
        return m

    def expert(self, layer: int, e: int) -> MLP:
        ex = self.moe(layer).experts[e]
        assert isinstance(ex, MLP)
        return ex

    def post_norm(self, layer: int, which: str) -> Norm | None:
        """The norm after the attention ("attn") or MLP ("mlp") sublayer, if the model has one."""
        b = self.blocks[layer]
        return b.ln1_post if which == "attn" else b.ln2_post

    @cached_property
    def W_U(self) -> Tensor:  # [d, V]
        return self._t(self.model.W_U)

    @cached_property
    def b_U(self) -> Tensor | None:
        return None if self.model.b_U is None else self._t(self.model.b_U)

    def ln1(self, layer: int) -> Norm:
        return self.blocks[layer].ln1

    def ln2(self, layer: int) -> Norm:
        n = self.blocks[layer].ln2
        assert n is not None
        return n

    @property
    def ln_final(self) -> Norm:
        return self.model.ln_final

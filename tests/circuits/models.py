"""Tiny models for the circuit tests: random ones with every weight non-trivial, and a
hand-built two-layer induction circuit whose heads are known by construction."""

from __future__ import annotations

from typing import Any, cast

import torch

from lenscope import HookedTransformer, ModelConfig


def random_model(
    n_layers: int = 2,
    norm: str = "LN",
    d_model: int = 24,
    n_heads: int = 3,
    d_vocab: int = 40,
    n_ctx: int = 16,
    attn_only: bool = True,
    seed: int = 0,
    positional: str = "learned",
) -> HookedTransformer:
    """Random init plus noise on every parameter (norm weights/biases, b_Q.., b_U included)."""
    cfg = ModelConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        attn_only=attn_only,
        normalization=norm,  # type: ignore[arg-type]
        unembed_bias=True,
        positional=positional,  # type: ignore[arg-type]
        name=f"rand{n_layers}{norm}",
    )
    model = HookedTransformer(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def induction_model(V: int = 64, n_ctx: int = 24, two_layers: bool = True) -> HookedTransformer:
    """No norms; residual = [token one-hot | position one-hot | previous-token one-hot].

    L0.H0 attends to the previous position and copies its token into the previous-token
    subspace; L1.H0 queries with the current token against keys' previous token (K-composition
    with L0.H0) and copies the attended token to the logits. All other heads are zero.
    """
    d = 2 * V + n_ctx
    dh = max(V, n_ctx)
    cfg = ModelConfig(
        n_layers=2 if two_layers else 1,
        d_model=d,
        n_heads=2,
        d_head=dh,
        d_vocab=V,
        n_ctx=n_ctx,
        attn_only=True,
        normalization="none",
        name="handmade-induction" if two_layers else "handmade-prev",
    )
    model = HookedTransformer(cfg)
    tok, pos, prev = slice(0, V), slice(V, V + n_ctx), slice(V + n_ctx, d)
    big = 40.0
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, tok] = torch.eye(V)
        assert model.W_pos is not None
        model.W_pos[:, pos] = torch.eye(n_ctx)
        unembed = torch.zeros(d, V)
        unembed[tok] = torch.eye(V) * 10.0
        assert model.unembed is not None
        model.unembed.copy_(unembed)
        a0 = model.blocks[0].attn
        wq, wk, wv, wo = (torch.zeros(2, d, dh) for _ in range(4))
        wo = torch.zeros(2, dh, d)
        # L0.H0: query position i matches key position i - 1
        wq[0, pos, :n_ctx] = torch.eye(n_ctx) * big
        shift = torch.zeros(n_ctx, n_ctx)
        shift[torch.arange(n_ctx - 1), torch.arange(1, n_ctx)] = 1.0  # key j -> slot j + 1
        wk[0, pos, :n_ctx] = shift
        wv[0, tok, :V] = torch.eye(V)
        wo[0, :V, prev] = torch.eye(V)
        _set_attn(cast(Any, a0), wq, wk, wv, wo)
        if two_layers:
            wq, wk, wv = (torch.zeros(2, d, dh) for _ in range(3))
            wo = torch.zeros(2, dh, d)
            wq[0, tok, :V] = torch.eye(V) * big
            wk[0, prev, :V] = torch.eye(V)
            wv[0, tok, :V] = torch.eye(V)
            wo[0, :V, tok] = torch.eye(V)
            _set_attn(cast(Any, model.blocks[1]).attn, wq, wk, wv, wo)
    return model.eval()


def _set_attn(
    attn: Any, wq: torch.Tensor, wk: torch.Tensor, wv: torch.Tensor, wo: torch.Tensor
) -> None:
    """Write TransformerLens-shaped weights [H, d, dh] / [H, dh, d] into the fused parameters."""
    h, d, dh = wq.shape

    def flat(w: torch.Tensor) -> torch.Tensor:
        return w.permute(1, 0, 2).reshape(d, h * dh)

    attn.w_qkv.copy_(torch.cat([flat(wq), flat(wk), flat(wv)], dim=1))
    attn.w_o.copy_(wo.reshape(h * dh, d))

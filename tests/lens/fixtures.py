"""Tiny models for the lens tests: several architectures, a byte-level BPE tokenizer."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from lenscope import HookedTransformer, ModelConfig
from lenscope.data.tokenizer import train_bpe
from lenscope.model.tokenizer import Tokenizer

TEXT = (
    "The keys to the cabinet are on the table. The key to the cabinets is on the table. "
    "for i in range(10): print(i, i * i)\n"
)

ARCHS: dict[str, dict[str, Any]] = {
    "gpt2": dict(normalization="LN", positional="learned", unembed_bias=True),
    "modern": dict(
        normalization="RMS",
        positional="rotary",
        gated_mlp=True,
        act_fn="silu",
        n_kv_heads=2,
        attn_bias=False,
        mlp_bias=False,
        tie_embeddings=True,
    ),
    "parallel": dict(normalization="LN", positional="rotary", parallel_attn_mlp=True),
    "attn_only": dict(normalization="LN", attn_only=True),
}


@functools.cache
def bpe() -> Tokenizer:
    return Tokenizer(train_bpe([TEXT] * 8, 300))


def tiny(
    arch: str = "gpt2",
    *,
    n_layers: int = 3,
    tokenizer: bool = False,
    seed: int = 0,
    scale: float = 1.0,
) -> HookedTransformer:
    """A random model; `scale` multiplies block matrices so that layers change the residual."""
    tok = bpe() if tokenizer else None
    vocab = tok.vocab_size if tok is not None else 61
    cfg = ModelConfig(
        n_layers=n_layers,
        d_model=32,
        n_heads=4,
        d_vocab=vocab,
        n_ctx=48,
        d_mlp=64,
        name=f"tiny-{arch}",
        **ARCHS[arch],
    )
    torch.manual_seed(seed)
    m = HookedTransformer(cfg, tok)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("blocks") and p.ndim == 2:
                p.mul_(scale)
            elif p.ndim == 1:  # non-trivial norm weights and biases
                p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def tokens(vocab: int, n: int = 17, seed: int = 1) -> Tensor:
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def manual_norm(model: HookedTransformer, x: Tensor) -> Tensor:
    """The final norm written out by hand (float64), never the module."""
    n = model.ln_final
    x = x.double()
    if n.kind == "none":
        return x
    if n.kind == "LN":
        x = x - x.mean(-1, keepdim=True)
    y = x / (x.pow(2).mean(-1, keepdim=True) + n.eps).sqrt()
    assert n.w is not None
    y = y * n.w.double()
    return y + n.b.double() if n.b is not None else y


def manual_unembed(model: HookedTransformer, x: Tensor) -> Tensor:
    out = x.double() @ model.W_U.double()
    return out + model.b_U.double() if model.b_U is not None else out

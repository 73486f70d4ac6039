"""Fixtures of the transcoder tests: synthetic MLP-like data, random transcoder sets."""

from __future__ import annotations

import torch
from torch import Tensor

from lenscope.model import HookedTransformer, fingerprint
from lenscope.sae.buffer import MemorySource
from lenscope.sae.transcoder_set import TranscoderSet
from lenscope.sae.transcoder_stack import TranscoderSetConfig, TranscoderStack


def mlp_blocks(
    n_blocks: int = 2, rows: int = 512, L: int = 2, d: int = 16, hidden: int = 48, seed: int = 0
) -> tuple[list[Tensor], int]:
    """Rows [x_0..x_{L-1}, y_0..y_{L-1}]: y_l = relu(x_l A_l - 1) B_l, a sparse MLP a transcoder
    can learn; returns (blocks, row width)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(L, d, hidden, generator=g) / d**0.5
    B = torch.randn(L, hidden, d, generator=g) / hidden**0.5
    out = []
    for _ in range(n_blocks):
        x = torch.randn(rows, L, d, generator=g)
        y = torch.einsum("bli,lih->blh", x, A).sub(1.0).relu()
        y = torch.einsum("blh,lho->blo", y, B)
        out.append(torch.cat([x.reshape(rows, -1), y.reshape(rows, -1)], 1))
    return out, 2 * L * d


def mlp_source(**kw: int) -> MemorySource:
    return MemorySource(mlp_blocks(**kw)[0])


def random_set(
    model: HookedTransformer,
    *,
    activation: str = "relu",
    k: int | None = None,
    d_sae: int = 48,
    skip: bool = False,
    cross_layer: bool = False,
    seed: int = 0,
    name: str = "random",
) -> TranscoderSet:
    """A transcoder set with random weights (biases and thresholds too) for every layer."""
    n = model.cfg.n_layers
    cfg = TranscoderSetConfig(
        d_in=model.cfg.d_model,
        d_sae=d_sae,
        d_out=model.cfg.d_model,
        layers=tuple(range(n)),
        activation=activation,
        k=k,
        skip=skip,
        cross_layer=cross_layer,
        model_name=model.cfg.name,
        model_fingerprint=fingerprint(model),
    )
    stack = TranscoderStack(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        stack.threshold.copy_(0.05 + 0.1 * torch.rand(stack.threshold.shape, generator=g))
    if cross_layer:
        return TranscoderSet(name, cfg, clt=stack.clt())
    return TranscoderSet(name, cfg, transcoders=stack.transcoders())

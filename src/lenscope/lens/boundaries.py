"""Layer boundaries of the residual stream and one forward pass that collects them all.

A boundary is a place where the residual stream can be read: after the embeddings (`embed`),
after each block (`L3.post`) and, optionally, after each block's attention sub-block (`L3.mid`).
The last boundary (`L{n-1}.post`) is what the model's final norm and unembedding read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.config import ModelConfig
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated


@dataclass(frozen=True)
class Boundary:
    """One readable place in the residual stream.

    `label`: "embed", "L0.mid", "L0.post", ...; `hook`: the hook point holding this residual (for
    parallel attention+MLP blocks the mid boundary is `resid_pre + attn_out`, named so);
    `blocks`: how many whole blocks the residual has passed through (embed 0, L0.mid 0, L0.post 1).
    """

    label: str
    hook: str
    blocks: int
    sublayer: bool = False


def lens_boundaries(cfg: ModelConfig, sublayers: bool = False) -> list[Boundary]:
    """The boundaries of a model, embeddings first; `sublayers` adds one after each attention.

    Attention-only blocks have no sub-block (the block *is* its attention), so `sublayers` adds
    nothing for them.
    """
    n = cfg.n_layers
    out = [Boundary("embed", "blocks.0.hook_resid_pre" if n else "hook_embed", 0)]
    for layer in range(n):
        if sublayers and not cfg.attn_only:
            hook = (
                f"blocks.{layer}.hook_resid_pre + blocks.{layer}.hook_attn_out"
                if cfg.parallel_attn_mlp
                else f"blocks.{layer}.hook_resid_mid"
            )
            out.append(Boundary(f"L{layer}.mid", hook, layer, sublayer=True))
        out.append(Boundary(f"L{layer}.post", f"blocks.{layer}.hook_resid_post", layer + 1))
    return out


def _needed_hooks(cfg: ModelConfig, bounds: list[Boundary]) -> list[str]:
    names: list[str] = []
    for b in bounds:
        if b.blocks == cfg.n_layers and not b.sublayer:
            continue  # the residual the forward pass returns
        names += [h.strip() for h in b.hook.split("+")]
    return names


@torch.no_grad()
@isolated
def collect_residuals(
    model: HookedTransformer,
    tokens: Tensor,
    bounds: list[Boundary],
    attention_mask: Tensor | None = None,
) -> list[Tensor]:
    """One forward pass (no unembedding) -> the residual [batch, pos, d_model] at each boundary."""
    cfg = model.cfg
    known = {b.label for b in lens_boundaries(cfg, sublayers=True)}
    for b in bounds:
        if b.label not in known:
            raise InputError(f"{cfg.name} has no boundary {b.label!r}; known: {sorted(known)}")
    names = _needed_hooks(cfg, bounds)
    final, cache = model.run_with_cache(
        tokens, names_filter=names, attention_mask=attention_mask, stop_at_layer=cfg.n_layers
    )
    out = []
    for b in bounds:
        if b.blocks == cfg.n_layers and not b.sublayer:
            out.append(final)
        elif "+" in b.hook:
            pre, attn = (h.strip() for h in b.hook.split("+"))
            out.append(cache[pre] + cache[attn])
        else:
            out.append(cache[b.hook])
    return out

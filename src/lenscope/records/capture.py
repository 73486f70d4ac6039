"""Read every group's per-token activations during one forward pass, through hooks.

Neurons: `blocks.l.mlp.hook_post`. Heads: the norm of what each head writes, |z_h W_O,h|, from
`blocks.l.attn.hook_z` (plus the layer's queries and keys, kept so that the chosen examples'
attention can be recomputed). Latents: `sae.encode` of the activation at the SAE's hook point.
Hooks only read (`lenscope.model.capture.tap`: statistics are computed inside the forward, in
bounded memory), so the model runs its fast paths (fused attention stays on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor

from lenscope.model import HookedTransformer
from lenscope.model.capture import recorder, tap
from lenscope.model.hooks import HookSpec
from lenscope.model.layers import Block
from lenscope.records.config import Group
from lenscope.records.select import head_norms
from lenscope.records.sparse import SparseRows
from lenscope.sae.dictionary import Dictionary

QK = tuple[Tensor, Tensor]
Acts = Tensor | SparseRows  # [b, p, n] float32, or a TopK SAE's [b * p, n] sparse rows
GroupFn = Callable[[Group, Acts, QK | None], None]  # (group, acts, q/k)


def _neuron_hook(g: Group, fn: GroupFn) -> list[HookSpec]:
    return tap([g.hook], lambda _, x: fn(g, x.float(), None))


def _latent_hook(g: Group, sae: Dictionary, fn: GroupFn, sparse: bool) -> list[HookSpec]:
    """Latents: dense `encode`, or `SparseRows` when the SAE keeps exactly k latents per token
    (`encode_topk`, lenscope's TopK SAEs), so that the harvest touches T·k entries, not T·d_sae."""
    topk = sae.encode_topk if sparse else None

    def hook(_: str, x: Tensor) -> None:
        pair = topk(x) if topk is not None else None
        if pair is None:
            fn(g, sae.encode(x).float(), None)
        else:
            fn(g, SparseRows(pair[0], pair[1].float(), g.size), None)

    return tap([g.hook], hook)


def _head_hooks(model: HookedTransformer, g: Group, fn: GroupFn) -> list[HookSpec]:
    attn = cast(Block, model.blocks[g.layer]).attn
    w_o = attn.W_O.detach().float()
    gram = w_o @ w_o.transpose(1, 2)  # [H, dh, dh]
    group = model.cfg.n_heads // model.cfg.n_kv_heads
    rot = "rot_" if attn.rotary is not None else ""
    store: dict[str, Tensor] = {}
    base = f"blocks.{g.layer}.attn"
    q_name, k_name = f"{base}.hook_{rot}q", f"{base}.hook_{rot}k"

    def on_z(_: str, z: Tensor) -> None:
        q, k = store.pop(q_name), store.pop(k_name)
        if group > 1:
            k = k.repeat_interleave(group, dim=2)
        fn(g, head_norms(z.float(), gram), (q, k))

    return [*recorder(store, [q_name, k_name]), *tap([f"{base}.hook_z"], on_z)]


def group_hooks(
    model: HookedTransformer,
    groups: list[Group],
    saes: list[Dictionary],
    fn: GroupFn,
    sparse: bool = True,
) -> list[HookSpec]:
    """Forward hooks that call `fn` once per group per forward pass (`sparse`: TopK SAEs'
    latents as `SparseRows`)."""
    specs: list[HookSpec] = []
    for g in groups:
        if g.kind == "neuron":
            specs += _neuron_hook(g, fn)
        elif g.kind == "head":
            specs += _head_hooks(model, g, fn)
        else:
            specs += _latent_hook(g, saes[g.sae], fn, sparse)
    return specs


def last_layer(groups: list[Group]) -> int:
    """The forward pass may stop after this block: no group reads anything later."""
    return max(g.layer for g in groups)


@torch.no_grad()
def group_activations(
    model: HookedTransformer,
    groups: list[Group],
    saes: list[Dictionary],
    tokens: Tensor,
) -> dict[str, Tensor]:
    """Every group's activations [batch, pos, n] on `tokens` (for texts and for checks)."""
    out: dict[str, Tensor] = {}

    def fn(g: Group, x: Acts, _: QK | None) -> None:
        assert isinstance(x, Tensor)
        out[g.name] = x

    with model.hooks(fwd=group_hooks(model, groups, saes, fn, sparse=False)):
        model(tokens, stop_at_layer=last_layer(groups) + 1)
    return out

"""Capturing activations at a hook point for SAE training and evaluation.

The tokens an SAE reads come from `lenscope.data.token_stream` (the model's own tokenization).
"""

from __future__ import annotations

import re
from typing import Any

import numpy.typing as npt
import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model import HookedTransformer

TokenArray = npt.NDArray[Any]
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_NOT_PER_TOKEN = ("hook_pattern", "hook_attn_scores")


def check_hook(model: HookedTransformer, hook: str) -> None:
    """`InputError` unless `hook` is a per-token hook point of `model`."""
    if hook not in model.hook_dict:
        tail = hook.split(".")[-1]
        close = [n for n in model.hook_dict if tail and tail in n][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(
            f"{model.cfg.name} has no hook point {hook!r}{hint} "
            "(names look like blocks.0.hook_resid_post)"
        )
    if hook.endswith(_NOT_PER_TOKEN):
        raise InputError(f"{hook} is not one vector per token; SAEs read per-token activations")


def stop_layer(hook: str, n_layers: int) -> int | None:
    """The smallest `stop_at_layer` whose forward still reaches `hook` (None: the full model)."""
    m = _BLOCK.match(hook)
    if m is not None:
        return min(int(m.group(1)) + 1, n_layers)
    if hook in ("hook_embed", "hook_pos_embed"):
        return 0
    return None


def flatten_act(a: Tensor) -> Tensor:
    """[batch, pos, ...] -> [batch, pos, d]: per-head hooks (hook_z, hook_q, ...) are flattened."""
    return a.reshape(*a.shape[:2], -1) if a.ndim > 3 else a


@torch.no_grad()
def capture(model: HookedTransformer, tokens: Tensor, hook: str) -> Tensor:
    """The activations [batch, pos, d] at `hook` for token ids [batch, pos]."""
    got: list[Tensor] = []

    def save(x: Tensor, _hook: Any) -> None:
        got.append(x.detach())

    with model.hooks(fwd=[(hook, save)]):
        model(tokens, stop_at_layer=stop_layer(hook, model.cfg.n_layers))
    if not got:
        raise InputError(f"the forward pass never reached {hook}")
    return flatten_act(got[-1])


def hook_width(model: HookedTransformer, hook: str) -> int:
    """The per-token width d_in of the activations at `hook`."""
    check_hook(model, hook)
    t = torch.zeros(1, 2, dtype=torch.long, device=model.device)
    return int(capture(model, t, hook).shape[-1])

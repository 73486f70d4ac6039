"""Hook points: named places in the forward pass where activations can be read or changed.

A `HookPoint` is an identity until a hook is attached. Forward hooks have TransformerLens' signature
`fn(activation, hook) -> activation | None`; returning a tensor replaces the activation. Backward hooks
`fn(grad, hook) -> grad | None` see the gradient of the activation (after forward hooks ran).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lenscope.errors import InputError

HookFn = Callable[..., Tensor | None]
HookSpec = tuple[str | Callable[[str], bool], HookFn]  # (hook name, glob or name filter; fn)


class HookPoint(nn.Module):
    """An identity module with a name that forward and backward hooks attach to."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""
        self.fwd_hooks: list[HookFn] = []
        self.bwd_hooks: list[HookFn] = []

    @property
    def active(self) -> bool:
        return bool(self.fwd_hooks or self.bwd_hooks)

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)

    def run(self, x: Tensor) -> Tensor:
        """The hot path: a plain method call, no `nn.Module.__call__` machinery."""
        if not self.fwd_hooks and not self.bwd_hooks:
            return x
        for fn in self.fwd_hooks:
            out = fn(x, self)
            if out is not None:
                x = out
        if self.bwd_hooks and x.requires_grad and torch.is_grad_enabled():
            for fn in self.bwd_hooks:
                x.register_hook(_bind_backward(fn, self))
        return x

    def clear(self) -> None:
        self.fwd_hooks.clear()
        self.bwd_hooks.clear()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, fwd={len(self.fwd_hooks)}, bwd={len(self.bwd_hooks)}"


def _bind_backward(fn: HookFn, hook: HookPoint) -> Callable[[Tensor], Tensor | None]:
    def call(grad: Tensor) -> Tensor | None:
        return fn(grad, hook)

    return call


# TransformerLens' `utils.get_act_name` vocabulary: short names and their aliases.
_ATTN_ACTS = frozenset({"k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores"})
_MLP_ACTS = frozenset({"pre", "post", "mid", "pre_linear"})
_NORM_ACTS = frozenset({"scale", "normalized"})
_ACT_ALIASES = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_LAYER_TYPE_ALIASES = {
    "a": "attn",
    "m": "mlp",
    "b": "",
    "block": "",
    "blocks": "",
    "attention": "attn",
}
_SHORTHAND = re.compile(r"([a-z]+)(\d+)([a-z]?.*)")


def get_act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """A full hook name from a short one, exactly as TransformerLens' `utils.get_act_name`.

    `get_act_name("resid_pre", 3)` is `"blocks.3.hook_resid_pre"`; attention and MLP activations
    find their sub-module (`("pattern", 0)` -> `"blocks.0.attn.hook_pattern"`, `("post", 1)` ->
    `"blocks.1.mlp.hook_post"`); a norm's scale names its norm with `layer_type`
    (`("scale", 2, "ln1")` -> `"blocks.2.ln1.hook_scale"`, `("scale",)` -> `"ln_final.hook_scale"`);
    the compact spelling `"pattern3"` / `"scale4ln1"` carries the layer in the name; a full name
    (`"blocks.0.hook_resid_post"`, `"hook_embed"`) comes back unchanged. Aliases: `attn` ->
    `pattern`, `attn_logits` -> `attn_scores`, `key`/`query`/`value` -> `k`/`q`/`v`,
    `mlp_pre`/`mlp_mid`/`mlp_post` -> `pre`/`mid`/`post`; layer types `a`, `m`, `b`.
    The name is not checked against a model: `model.hook_dict` says which exist.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"an activation name is a non-empty string, got {name!r}")
    if layer is not None and (not isinstance(layer, int) or isinstance(layer, bool) or layer < 0):
        raise InputError(f"a layer is a non-negative integer, got {layer!r}")
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    at: int | str | None = layer
    m = _SHORTHAND.match(name)
    if m is not None:
        name, at, layer_type = m.group(1), m.group(2), m.group(3)
    name = _ACT_ALIASES.get(name, name)
    full = f"blocks.{at}." if at is not None else ""
    if name in _ATTN_ACTS:
        layer_type = "attn"
    elif name in _MLP_ACTS:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPE_ALIASES:
        layer_type = _LAYER_TYPE_ALIASES[layer_type]
    if layer_type:
        full += f"{layer_type}."
    full += f"hook_{name}"
    if name in _NORM_ACTS and at is None:
        full = f"ln_final.{full}"
    return full

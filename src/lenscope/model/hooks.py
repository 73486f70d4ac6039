"""Hook points: named places in the forward pass where activations can be read or changed.

A `HookPoint` is an identity until a hook is attached. Forward hooks have TransformerLens' signature
`fn(activation, hook) -> activation | None`; returning a tensor replaces the activation. Backward hooks
`fn(grad, hook) -> grad | None` see the gradient of the activation (after forward hooks ran).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

HookFn = Callable[..., Tensor | None]


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

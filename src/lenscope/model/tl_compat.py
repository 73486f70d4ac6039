"""TransformerLens spellings on `HookedTransformer`: `run_with_hooks`, `OV`, `QK`.

A mixin, so that `transformer.py` keeps the forward pass and this module keeps the habits of
TransformerLens users: `model.run_with_hooks(tokens, fwd_hooks=[(name, fn)], bwd_hooks=[...],
reset_hooks_end=True, return_type="logits" | "loss" | "both" | None)` and the batched factored
circuits `model.OV` / `model.QK` ([n_layers, n_heads] of d_model x d_model, rank d_head).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, overload

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.factored import FactoredMatrix
from lenscope.model.hooks import HookFn, HookSpec

Input = Tensor | str | Sequence[str]
ReturnType = Literal["logits", "loss", "both"] | None
RETURN_TYPES = ("logits", "loss", "both", None)


class _Hooked(Protocol):
    """What the mixin needs from the model it is mixed into."""

    @property
    def W_Q(self) -> Tensor: ...
    @property
    def W_K(self) -> Tensor: ...
    @property
    def W_V(self) -> Tensor: ...
    @property
    def W_O(self) -> Tensor: ...

    def __call__(self, input: Input, **kwargs: Any) -> Tensor: ...

    def hooks(
        self, fwd: Sequence[HookSpec] = (), bwd: Sequence[HookSpec] = ()
    ) -> contextlib.AbstractContextManager[Any]: ...

    def add_hook(
        self, name: str | Callable[[str], bool], fn: HookFn, dir: Literal["fwd", "bwd"] = "fwd"
    ) -> None: ...

    def to_tokens_and_mask(self, text: str | Sequence[str]) -> tuple[Tensor, Tensor | None]: ...

    def loss(
        self, logits: Tensor, tokens: Tensor, attention_mask: Tensor | None = None
    ) -> Tensor: ...


class TransformerLensMethods:
    """TransformerLens' `HookedTransformer` methods that lenscope has the concept for."""

    @property
    def OV(self: _Hooked) -> FactoredMatrix:
        """W_V W_O of every head as a `FactoredMatrix` [n_layers, n_heads, d_model, d_model].

        As TransformerLens' `model.OV`: the raw weights (no LayerNorm folding; for folded,
        centred circuits use `lenscope.circuits.circuit_weights(model).OV`). Grouped-query models
        repeat each key/value head over the query heads that share it.
        """
        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def QK(self: _Hooked) -> FactoredMatrix:
        """W_Q W_K^T of every head as a `FactoredMatrix` [n_layers, n_heads, d_model, d_model].

        As TransformerLens' `model.QK`: query-side residual rows, key-side residual columns, raw
        weights (rotary models rotate q and k by position, which this product leaves out).
        """
        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @overload
    def run_with_hooks(
        self: _Hooked,
        input: Input,
        fwd_hooks: Sequence[HookSpec] = ...,
        bwd_hooks: Sequence[HookSpec] = ...,
        reset_hooks_end: bool = ...,
        *,
        return_type: Literal["logits", "loss"] = ...,
        attention_mask: Tensor | None = ...,
        stop_at_layer: int | None = ...,
    ) -> Tensor: ...

    @overload
    def run_with_hooks(
        self: _Hooked,
        input: Input,
        fwd_hooks: Sequence[HookSpec] = ...,
        bwd_hooks: Sequence[HookSpec] = ...,
        reset_hooks_end: bool = ...,
        *,
        return_type: Literal["both"],
        attention_mask: Tensor | None = ...,
        stop_at_layer: None = ...,
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def run_with_hooks(
        self: _Hooked,
        input: Input,
        fwd_hooks: Sequence[HookSpec] = ...,
        bwd_hooks: Sequence[HookSpec] = ...,
        reset_hooks_end: bool = ...,
        *,
        return_type: None,
        attention_mask: Tensor | None = ...,
        stop_at_layer: int | None = ...,
    ) -> None: ...

    def run_with_hooks(
        self: _Hooked,
        input: Input,
        fwd_hooks: Sequence[HookSpec] = (),
        bwd_hooks: Sequence[HookSpec] = (),
        reset_hooks_end: bool = True,
        *,
        return_type: ReturnType = "logits",
        attention_mask: Tensor | None = None,
        stop_at_layer: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor] | None:
        """Run forward with hooks attached, as TransformerLens' `run_with_hooks`.

        `fwd_hooks` / `bwd_hooks` are `(name_or_filter, fn)` pairs: a hook name, a glob such as
        `"blocks.*.hook_resid_post"`, or a `name -> bool` filter. A forward hook
        `fn(activation, hook)` may return a replacement; a backward hook `fn(grad, hook)` sees
        the gradient of its activation when the caller runs `.backward()` on the output, after
        this call returned (lenscope registers it on the activation during the forward pass, so
        `reset_hooks_end=True` does not disarm it as it does in TransformerLens).
        With `reset_hooks_end=True` (the default) the hooks added here are removed on return,
        also on error; hooks attached before the call stay. With `False` they stay attached
        until `model.reset_hooks()`.
        `return_type`: `"logits"` [batch, pos, d_vocab], `"loss"` (mean next-token loss),
        `"both"` (logits, loss), or `None` (run for the hooks' side effects, return nothing).
        """
        if return_type not in RETURN_TYPES:
            raise InputError(
                f"return_type must be one of 'logits', 'loss', 'both' or None; got {return_type!r}"
            )
        if return_type == "both" and stop_at_layer is not None:
            raise InputError("return_type='both' needs logits: drop stop_at_layer")
        if not reset_hooks_end:
            with self.hooks(fwd_hooks, bwd_hooks):
                pass  # every name resolves (a clear error otherwise) before any hook stays
            for name, fn in fwd_hooks:
                self.add_hook(name, fn, "fwd")
            for name, fn in bwd_hooks:
                self.add_hook(name, fn, "bwd")
            return _run(self, input, return_type, attention_mask, stop_at_layer)
        with self.hooks(fwd_hooks, bwd_hooks):
            return _run(self, input, return_type, attention_mask, stop_at_layer)


def _run(
    model: _Hooked,
    input: Input,
    return_type: ReturnType,
    attention_mask: Tensor | None,
    stop_at_layer: int | None,
) -> Tensor | tuple[Tensor, Tensor] | None:
    if return_type != "both":
        out = model(
            input,
            attention_mask=attention_mask,
            return_type=return_type or "logits",
            stop_at_layer=stop_at_layer,
        )
        return None if return_type is None else out
    if isinstance(input, Tensor):
        tokens = input[None] if input.ndim == 1 else input
    else:
        tokens, mask = model.to_tokens_and_mask(input)
        attention_mask = mask if attention_mask is None else attention_mask
    logits = model(tokens, attention_mask=attention_mask)
    mask_on = attention_mask.to(logits.device) if attention_mask is not None else None
    return logits, model.loss(logits, tokens.to(logits.device, torch.long), mask_on)

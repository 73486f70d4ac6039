"""The linear part of a transcoder's encoder, which attribution graphs need for pre-activations.

A feature's input in the graph is its pre-activation `x @ W[:, j] + b[j]` (x read at the
dictionary's `hook_in`). `Dictionary.encode` hides that linear map behind the activation, so
`linear_encoder` reads it from `Dictionary.source`:

- lenscope's `Transcoder` (and anything shaped like it): `W_enc` [d_in, d_sae], `b_enc` [d_sae],
  and an optional skip `W_skip` [d_in, d_out] (the output gains `x @ W_skip`);
- a `CrossLayerTranscoder`: per source layer `W_enc[l]` [d_sae, d_in], `b_enc[l]` [d_sae].

Any other dictionary is refused in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae.dictionary import Dictionary

_LAYER = re.compile(r"^blocks\.(\d+)\.")


@runtime_checkable
class HasLinearEncoder(Protocol):
    """A transcoder whose encoder is `act(x @ W_enc + b_enc)`."""

    W_enc: Tensor
    b_enc: Tensor


@dataclass(frozen=True)
class LinearEncoder:
    """pre = x @ W + b; the output gains x @ W_skip where a skip connection exists."""

    W: Tensor  # [d_in, d_sae]
    b: Tensor  # [d_sae]
    W_skip: Tensor | None = None  # [d_in, d_out]


def hook_layer(hook: str) -> int:
    """The block index in a hook name like `blocks.3.hook_resid_mid`."""
    m = _LAYER.match(hook)
    if m is None:
        raise InputError(f"{hook} is not a hook inside a block (blocks.L.<name>)")
    return int(m.group(1))


def linear_encoder(dic: Dictionary) -> LinearEncoder:
    """The encoder's linear part (see the module); `InputError` for a dictionary without one."""
    src: Any = dic.source
    W, b = getattr(src, "W_enc", None), getattr(src, "b_enc", None)
    if isinstance(W, list) and isinstance(b, list):  # a cross-layer transcoder: one per layer
        layer = hook_layer(dic.hook_in)
        if not 0 <= layer < len(W):
            raise InputError(f"the cross-layer transcoder has no encoder for layer {layer}")
        W, b = W[layer].t(), b[layer]
    if not isinstance(W, Tensor) or not isinstance(b, Tensor) or W.ndim != 2 or b.ndim != 1:
        raise InputError(
            f"the dictionary reading {dic.hook_in} has no linear encoder (W_enc, b_enc): "
            "attribution graphs need transcoders whose features are act(x @ W_enc + b_enc)"
        )
    if W.shape[1] != dic.d_sae or b.shape[0] != dic.d_sae:
        raise InputError(
            f"the dictionary reading {dic.hook_in}: W_enc {tuple(W.shape)} and b_enc "
            f"{tuple(b.shape)} do not match its {dic.d_sae} features"
        )
    skip = getattr(src, "W_skip", None)
    if skip is not None and not isinstance(skip, Tensor):
        skip = None
    if skip is not None and skip.shape != (W.shape[0], dic.d_out(dic.hooks_out[0])):
        raise InputError(
            f"the transcoder reading {dic.hook_in}: W_skip {tuple(skip.shape)} is not "
            f"[d_in, d_out] = {(W.shape[0], dic.d_out(dic.hooks_out[0]))}"
        )
    return LinearEncoder(W.detach(), b.detach(), None if skip is None else skip.detach())

"""`generate`'s settings and its choice of the next token (greedy, or sampled with top-k)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lenscope.errors import InputError

ONE_PROMPT = (
    "generate takes one prompt: a string, or token ids as a tensor ([pos], or [batch, pos] of "
    "equal-length rows); call it once per prompt"
)


def describe(x: object) -> str:
    """What a wrong input is, for an error message."""
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)} items"
    return f"a {type(x).__name__}"


def check_sampling(
    max_new_tokens: object, temperature: object, top_k: object, seed: object
) -> None:
    """Each setting checked before any work: one clear line for a bad one."""
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 0
    ):
        raise InputError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise InputError(
            f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InputError(f"top_k must be an integer >= 1 (or None for all tokens), got {top_k!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64
    ):
        raise InputError(f"seed must be an integer (or None), got {seed!r}")


def next_token(
    logits: Tensor, temperature: float, top_k: int | None, gen: torch.Generator | None
) -> Tensor:
    """logits [batch, d_vocab] -> the next token [batch, 1]: the argmax at temperature 0, else a
    sample from softmax(logits / temperature) over the `top_k` most likely tokens."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=gen)

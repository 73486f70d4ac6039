"""Helpers every route shares: the server state, prompt bounds checked before any work."""

from __future__ import annotations

from typing import cast

import torch
from fastapi import Request

from lenscope.errors import InputError
from lenscope.model import HookedTransformer
from lenscope.server.config import MAX_PROMPT_TOKENS
from lenscope.server.state import ServerState


def get_state(request: Request) -> ServerState:
    return cast(ServerState, request.app.state.lenscope)


def prompt_limit(model: HookedTransformer) -> int:
    return min(model.cfg.n_ctx, MAX_PROMPT_TOKENS)


def prompt_ids(
    model: HookedTransformer, prompt: str | list[int], what: str = "the prompt"
) -> list[int]:
    """Token ids of a prompt as the engine will read it; `InputError` when it cannot be read."""
    if isinstance(prompt, str):
        if model.tokenizer is None:
            raise InputError(f"{model.cfg.name} has no tokenizer; give token ids, not text")
        ids = model.tokenizer.encode(prompt, prepend_bos=model.cfg.default_prepend_bos)
    else:
        ids = list(prompt)
        bad = [t for t in ids if not 0 <= t < model.cfg.d_vocab]
        if bad:
            raise InputError(
                f"{what}: token id {bad[0]} is outside the vocabulary (0..{model.cfg.d_vocab - 1})"
            )
    if not ids:
        raise InputError(f"{what} is empty: give some text")
    limit = prompt_limit(model)
    if len(ids) > limit:
        raise InputError(
            f"{what} has {len(ids)} tokens but this server reads at most {limit} for "
            f"{model.cfg.name}; shorten it"
        )
    return ids


def prompt_tensor(
    model: HookedTransformer, prompt: str | list[int], what: str = "the text"
) -> torch.Tensor:
    return torch.tensor([prompt_ids(model, prompt, what)], dtype=torch.long, device=model.device)

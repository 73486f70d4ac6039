"""Helpers every route shares: the server state, prompt bounds checked before any work."""

from __future__ import annotations

from typing import cast

import torch
from fastapi import Request

from lenscope.errors import InputError
from lenscope.interventions.prompts import read_prompt
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
    ids = read_prompt(model, prompt, what)
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

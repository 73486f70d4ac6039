"""Next-token predictions for a prompt: the simplest question a user asks a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model.transformer import HookedTransformer

MAX_TOP_K = 1000


@dataclass
class PredictedToken(JsonResult):
    token: str
    id: int
    prob: float
    logit: float


@dataclass
class NextTokens(JsonResult):
    model: str
    prompt: str
    str_tokens: list[str]
    candidates: list[PredictedToken]
    entropy: float


@torch.no_grad()
def next_tokens(model: HookedTransformer, prompt: str, top_k: int = 10) -> NextTokens:
    """The model's top-k next tokens after `prompt`, with probabilities and the entropy."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must lie in [1, {MAX_TOP_K}], got {top_k}")
    if not prompt:
        raise InputError("the prompt is empty: give some text")
    tokens = model.to_tokens(prompt)
    logits = model(tokens)[0, -1].float()
    logp = logits.log_softmax(-1)
    top = logits.topk(min(top_k, logits.shape[-1]))
    tok = model.tokenizer
    assert tok is not None
    cands = [
        PredictedToken(tok.token_str(int(i)), int(i), float(logp[i].exp()), float(v))
        for v, i in zip(top.values, top.indices, strict=True)
    ]
    entropy = float(-(logp.exp() * logp).sum())
    return NextTokens(model.cfg.name, prompt, model.to_str_tokens(tokens[0]), cands, entropy)

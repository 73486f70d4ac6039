"""The lens across a generation (Ecco's `rankings`, `layer_predictions`, `rankings_watch`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.lens.core import logit_lens
from lenscope.lens.result import GenerationLens
from lenscope.lens.unembed import Precision, check_precision
from lenscope.lens.watch import resolve_position
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

if TYPE_CHECKING:
    from lenscope.lens.tuned import TunedLens


@isolated
def lens_generation(
    model: HookedTransformer,
    prompt: str | Tensor | Sequence[int],
    n_new: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    watch: Sequence[str] = (),
    position: int | None = None,
    k: int = 10,
    sublayers: bool = False,
    tuned: TunedLens | None = None,
    prepend_bos: bool | None = None,
    precision: Precision = "fp32",
) -> GenerationLens:
    """Generate `n_new` tokens (greedy at temperature 0, else sampled with `seed`) and lens them.

    `position` (a residual position in the whole sequence, negative from the end) is where
    `layer_predictions` and `rankings_watch` are read; by default the last prompt token, whose
    lens predicts the first generated token.
    """
    precision = check_precision(precision)
    if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 0:
        raise InputError(f"the number of tokens to generate must be >= 0, got {n_new!r}")
    if temperature < 0:
        raise InputError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if isinstance(prompt, str):
        tokens = model.to_tokens(prompt, prepend_bos=prepend_bos)
    else:
        t = prompt if isinstance(prompt, Tensor) else torch.tensor(list(prompt), dtype=torch.long)
        tokens = t.reshape(1, -1).to(model.device)
    n_prompt = tokens.shape[1]
    if n_prompt == 0:
        raise InputError("the prompt is empty: give at least one token")
    if n_prompt > model.cfg.n_ctx:
        raise InputError(
            f"the prompt is too long for {model.cfg.name}'s context: {n_prompt} tokens > n_ctx "
            f"= {model.cfg.n_ctx}; shorten it"
        )
    if n_prompt + n_new > model.cfg.n_ctx:
        raise InputError(
            f"{n_prompt} prompt tokens + {n_new} to generate exceed {model.cfg.name}'s context of "
            f"{model.cfg.n_ctx}; generate at most {max(model.cfg.n_ctx - n_prompt, 0)}"
        )
    out = model.generate(
        tokens, n_new, temperature=temperature, top_k=top_k, seed=seed, return_text=False
    )
    assert isinstance(out, Tensor)
    seq = out[0]
    res = logit_lens(
        model, seq, k=k, watch=watch, sublayers=sublayers, tuned=tuned, precision=precision
    )
    pos = n_prompt - 1 if position is None else resolve_position(position, seq.shape[0])
    chosen = slice(n_prompt - 1, n_prompt - 1 + n_new)
    gen_ids = seq[n_prompt:].tolist()
    return GenerationLens(
        lens=res,
        n_prompt=n_prompt,
        generated_ids=gen_ids,
        generated=res.tokens[n_prompt:],
        position=pos,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        rankings=res.next_rank[:, chosen].tolist(),
        layer_predictions=res.layer_predictions(pos),
        rankings_watch=res.rankings_watch(pos),
        notes=list(res.notes),
    )

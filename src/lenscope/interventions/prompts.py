"""Prompts (text or token ids) to one right-padded batch with its mask and lengths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.interventions.spec import Prompt
from lenscope.model.transformer import HookedTransformer


@dataclass
class PromptBatch:
    tokens: Tensor  # [batch, pos], right-padded
    mask: Tensor | None  # [batch, pos] 1 = real token; None when no padding
    lengths: list[int]

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return int(self.tokens.shape[1])


def read_prompt(model: HookedTransformer, prompt: Prompt, what: str = "the prompt") -> list[int]:
    """Token ids of one prompt (text through the model's tokenizer, or ids checked against the
    vocabulary); `InputError` naming `what` when it cannot be read or is empty."""
    if isinstance(prompt, str):
        if model.tokenizer is None:
            raise InputError(f"{model.cfg.name} has no tokenizer; give token ids, not text")
        ids = model.tokenizer.encode(prompt, prepend_bos=model.cfg.default_prepend_bos)
    else:
        ids = [int(t) for t in prompt]
        bad = [t for t in ids if not 0 <= t < model.cfg.d_vocab]
        if bad:
            raise InputError(
                f"{what}: token id {bad[0]} is outside the vocabulary (0..{model.cfg.d_vocab - 1})"
            )
    if not ids:
        raise InputError(f"{what} is empty: give some text")
    return ids


def encode_prompts(model: HookedTransformer, prompts: Sequence[Prompt]) -> PromptBatch:
    if not prompts:
        raise InputError("no prompts given: give at least one prompt")
    rows: list[list[int]] = []
    for i, p in enumerate(prompts):
        ids = read_prompt(model, p, f"prompt {i}")
        if len(ids) > model.cfg.n_ctx:
            raise InputError(
                f"prompt {i} has {len(ids)} tokens but {model.cfg.name} reads at most "
                f"{model.cfg.n_ctx}; shorten it"
            )
        rows.append(ids)
    n = max(len(r) for r in rows)
    pad = model.tokenizer.pad_id if model.tokenizer is not None else 0
    # built on the CPU, then moved to the model's device in one copy
    tokens = torch.full((len(rows), n), pad, dtype=torch.long, device="cpu")
    mask = torch.zeros((len(rows), n), dtype=torch.long, device="cpu")
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, device="cpu")
        mask[i, : len(r)] = 1
    lengths = [len(r) for r in rows]
    dev = model.device
    return PromptBatch(tokens.to(dev), None if bool(mask.all()) else mask.to(dev), lengths)


def repeat_batch(batch: PromptBatch, row: int, times: int) -> PromptBatch:
    """`times` copies of one prompt of the batch (same width, so plan values still fit)."""
    toks = batch.tokens[row : row + 1].expand(times, -1).contiguous()
    mask = None if batch.mask is None else batch.mask[row : row + 1].expand(times, -1).contiguous()
    return PromptBatch(toks, mask, [batch.lengths[row]] * times)

"""Repeated random token sequences, [BOS, r, r]: the input of induction and previous-token probes.

An induction head attends from each token of the second copy of r to the token *after* that
token's first occurrence; the training probes and the head detectors both read these sequences.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lenscope.model.transformer import HookedTransformer


def probe_pool(model: HookedTransformer) -> Tensor:
    """Token ids to draw random sequences from, excluding the very commonest and rarest tokens.

    When the model's manifest records training token counts (`data.token_counts`, written by the
    recipes), the 1% most frequent and the 10% least frequent tokens are excluded. Otherwise ids
    below 1% and above 99% of the vocabulary are: in byte-level BPE the lowest ids are single bytes
    and special tokens and the highest are the rarest merges.
    """
    v = model.cfg.d_vocab
    man = getattr(model, "manifest", None)
    counts = man.data.get("token_counts") if man is not None else None
    if isinstance(counts, list) and len(counts) == v:
        order = torch.tensor(counts, dtype=torch.float64).argsort(descending=True, stable=True)
        return order[v // 100 : v - v // 10]
    lo, hi = max(1, v // 100), max(2, v - v // 100)
    return torch.arange(lo, hi)


def repeated_tokens(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 32, seed: int = 0
) -> Tensor:
    """[n_seqs, 1 + 2*seq_len] = [BOS, r, r], r drawn uniformly from `probe_pool(model)`."""
    pool = probe_pool(model)
    g = torch.Generator().manual_seed(seed)
    r = pool[torch.randint(0, len(pool), (n_seqs, seq_len), generator=g)]
    bos_id = model.tokenizer.bos_id if model.tokenizer is not None else None
    bos = torch.full((n_seqs, 1), bos_id if bos_id is not None else 0, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)

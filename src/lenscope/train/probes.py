"""Behavioural probes used during training and by the head detectors: induction and previous-token.

An induction probe feeds [BOS, r, r] where r is a random token sequence; an induction head attends
from each token of the second copy to the token *after* that token's first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated


@dataclass
class InductionProbe:
    induction: list[list[float]]  # [layer][head] mean attention to the token after the earlier copy
    prev_token: list[list[float]]  # [layer][head] mean attention to the previous position
    loss_first_half: float
    loss_repeat_half: float
    seq_len: int
    n_seqs: int

    @property
    def best_induction(self) -> tuple[int, int, float]:
        return _best(self.induction)

    @property
    def best_prev_token(self) -> tuple[int, int, float]:
        return _best(self.prev_token)


def _best(grid: list[list[float]]) -> tuple[int, int, float]:
    best = max(
        ((lay, h, v) for lay, row in enumerate(grid) for h, v in enumerate(row)), key=lambda t: t[2]
    )
    return best


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


@torch.no_grad()
@isolated
def induction_probe(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 32, seed: int = 0
) -> InductionProbe:
    seq_len = min(seq_len, (model.cfg.n_ctx - 1) // 2)
    toks = repeated_tokens(model, seq_len, n_seqs, seed).to(model.device)
    logits, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    ind, prev = [], []
    q = torch.arange(seq_len + 1, 2 * seq_len + 1)  # positions of the second copy
    q_all = torch.arange(1, 2 * seq_len + 1)
    for layer in range(model.cfg.n_layers):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"].float()  # [b, h, q, k]
        ind.append(pat[:, :, q, q - seq_len + 1].mean((0, 2)).tolist())
        prev.append(pat[:, :, q_all, q_all - 1].mean((0, 2)).tolist())
    lp = logits[:, :-1].float().log_softmax(-1)
    nll = -lp.gather(-1, toks[:, 1:, None])[..., 0]
    return InductionProbe(
        induction=ind,
        prev_token=prev,
        loss_first_half=float(nll[:, 1:seq_len].mean()),
        loss_repeat_half=float(nll[:, seq_len + 1 :].mean()),
        seq_len=seq_len,
        n_seqs=n_seqs,
    )

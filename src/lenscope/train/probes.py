"""Behavioural probes used during training and by the head detectors: induction and previous-token.

An induction probe feeds [BOS, r, r] (`lenscope.data.repeated`) where r is a random token sequence;
an induction head attends from each token of the second copy to the token *after* that token's
first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenscope.data.repeated import repeated_tokens
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


Grid = list[list[float]]


@torch.no_grad()
def repeat_scores(
    model: HookedTransformer, seq_len: int, n_seqs: int, seed: int
) -> tuple[Grid, Grid, Grid, float, float]:
    """On [BOS, r, r] (r: `seq_len` random tokens, `n_seqs` rows): every head's mean attention
    [layer][head] to the previous position, to the same token in the first copy (duplicate) and
    to the token after it (induction), from the second copy; then the mean loss in nats on the
    first and on the repeated half. The caller runs it on a private view of the model."""
    toks = repeated_tokens(model, seq_len, n_seqs, seed).to(model.device)
    logits, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    q_all = torch.arange(1, 2 * seq_len + 1)
    q_rep = torch.arange(seq_len + 1, 2 * seq_len + 1)  # positions of the second copy
    prev, dup, ind = [], [], []
    for layer in range(model.cfg.n_layers):
        pat = cache[f"blocks.{layer}.attn.hook_pattern"].float()  # [b, h, q, k]
        prev.append(pat[:, :, q_all, q_all - 1].mean((0, 2)).tolist())
        dup.append(pat[:, :, q_rep, q_rep - seq_len].mean((0, 2)).tolist())
        ind.append(pat[:, :, q_rep, q_rep - seq_len + 1].mean((0, 2)).tolist())
    lp = logits[:, :-1].float().log_softmax(-1)
    nll = -lp.gather(-1, toks[:, 1:, None])[..., 0]  # nll[:, i] predicts position i + 1
    first, repeat = float(nll[:, 1:seq_len].mean()), float(nll[:, seq_len + 1 :].mean())
    return prev, dup, ind, first, repeat


@torch.no_grad()
@isolated
def induction_probe(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 32, seed: int = 0
) -> InductionProbe:
    seq_len = min(seq_len, (model.cfg.n_ctx - 1) // 2)
    prev, _, ind, first, repeat = repeat_scores(model, seq_len, n_seqs, seed)
    return InductionProbe(ind, prev, first, repeat, seq_len, n_seqs)

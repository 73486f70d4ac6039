"""Repeated random token sequences, [BOS, r, r]: the input of induction and previous-token probes.

An induction head attends from each token of the second copy of r to the token *after* that
token's first occurrence; the training probes and the head detectors both read these sequences,
and `repeat_scores` measures every head's attention on them (so no instrument imports `train`).
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
    and special tokens and the highest are the rarest merges. On the CPU, whatever the model's
    device (the draws from it are then the same everywhere).
    """
    v = model.cfg.d_vocab
    man = getattr(model, "manifest", None)
    counts = man.data.get("token_counts") if man is not None else None
    if isinstance(counts, list) and len(counts) == v:
        order = torch.tensor(counts, dtype=torch.float64, device="cpu").argsort(
            descending=True, stable=True
        )
        return order[v // 100 : v - v // 10]
    lo, hi = max(1, v // 100), max(2, v - v // 100)
    return torch.arange(lo, hi, device="cpu")


def repeated_tokens(
    model: HookedTransformer, seq_len: int = 50, n_seqs: int = 32, seed: int = 0
) -> Tensor:
    """[n_seqs, 1 + 2*seq_len] = [BOS, r, r], r drawn uniformly from `probe_pool(model)`; on the
    CPU (the same tokens on every device): move them to the model's device to run them."""
    pool = probe_pool(model)
    g = torch.Generator().manual_seed(seed)
    r = pool[torch.randint(0, len(pool), (n_seqs, seq_len), generator=g, device="cpu")]
    bos_id = model.tokenizer.bos_id if model.tokenizer is not None else None
    bos = torch.full(
        (n_seqs, 1), bos_id if bos_id is not None else 0, dtype=torch.long, device="cpu"
    )
    return torch.cat([bos, r, r], dim=1)


Grid = list[list[float]]  # [layer][head]


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
    q_all = torch.arange(1, 2 * seq_len + 1, device=toks.device)
    q_rep = torch.arange(
        seq_len + 1, 2 * seq_len + 1, device=toks.device
    )  # positions of the second copy
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

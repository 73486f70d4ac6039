"""The logit lens: every boundary's residual through the model's own final norm and unembedding.

One forward pass stops before the unembedding and keeps the residual at every boundary; each is
then projected exactly as the model projects its last one, `unembed(ln_final(x))`, with the norm
recomputed from that residual (never the final layer's cached scale). The last boundary therefore
reproduces the model's output logits bit for bit. Per boundary the full [pos, vocab] logits are
reduced at once to top-k, entropy, KL to the final distribution and ranks of chosen tokens, so
memory stays at two [pos, vocab] matrices whatever the depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.lens.boundaries import Boundary, collect_residuals, lens_boundaries
from lenscope.lens.result import LensResult
from lenscope.lens.watch import resolve_watch, token_strs
from lenscope.model.transformer import HookedTransformer

if TYPE_CHECKING:
    from lenscope.lens.tuned import TunedLens


def project(
    model: HookedTransformer, resid: Tensor, bound: Boundary, tuned: TunedLens | None = None
) -> Tensor:
    """Logits of one boundary's residual: `unembed(ln_final(translate(resid)))`."""
    if tuned is not None:
        resid = tuned.translate(bound, resid)
    return model.unembed_resid(model.ln_final(resid))


def _boundaries(
    model: HookedTransformer, sublayers: bool, tuned: TunedLens | None
) -> list[Boundary]:
    if tuned is not None:
        if sublayers:
            raise InputError(
                "a tuned lens has translators at block boundaries only; drop sublayers"
            )
        tuned.check_model(model)
    return lens_boundaries(model.cfg, sublayers)


@torch.no_grad()
def lens_logits(
    model: HookedTransformer,
    tokens: Tensor,
    *,
    sublayers: bool = False,
    tuned: TunedLens | None = None,
    attention_mask: Tensor | None = None,
) -> tuple[list[Boundary], Tensor]:
    """Full lens logits [boundaries, batch, pos, d_vocab] for a batch of token ids."""
    bounds = _boundaries(model, sublayers, tuned)
    resids = collect_residuals(model, tokens, bounds, attention_mask)
    return bounds, torch.stack(
        [project(model, r, b, tuned) for r, b in zip(resids, bounds, strict=True)]
    )


# Boundaries are projected a few at a time as one [G*P, d] x [d, V] matmul (bigger matmuls run
# faster on CPU); a group holds at most this many logits.
_GROUP_ELEMS = 1 << 25


@dataclass
class _Reduced:
    top_ids: Tensor  # [G, P, k]
    top_probs: Tensor  # [G, P, k]
    entropy: Tensor  # [G, P]
    kl: Tensor  # [G, P]
    rank: Tensor  # [G, P, T]
    prob: Tensor  # [G, P, T]


def _neg_entropy_like(logp: Tensor, p: Tensor) -> Tensor:
    """Σ_v p[v] log q[v] for logp [G, P, V] (log q) and p [P, V] (broadcast over G)."""
    return (logp * p).sum(-1)


def _reduce(
    logits: Tensor, final_p: Tensor, final_neg_h: Tensor, targets: Tensor, k: int
) -> _Reduced:
    """Summaries of G boundaries' logits [G, P, V]: top-k, entropy, KL(final ‖ lens), ranks."""
    logits = logits.float()
    logp = logits.log_softmax(-1)  # the op a user applies to the model's own logits
    p = logp.exp()
    entropy = -(p * logp).sum(-1)
    # KL(f ‖ l) = Σ p_f log p_f - Σ p_f log p_l; the first sum is -H(f), computed once.
    kl = final_neg_h - _neg_entropy_like(logp, final_p)
    top = logits.topk(k, dim=-1)
    tgt = targets.expand(logits.shape[0], -1, -1)
    chosen = logits.gather(-1, tgt)  # [G, P, T]
    # Rank = 1 + #tokens scoring strictly higher. Comparing into a float buffer and summing is
    # several times faster on CPU than summing a bool tensor (which casts it first).
    buf = torch.empty_like(logits)
    rank = torch.stack(
        [
            torch.gt(logits, chosen[..., j : j + 1], out=buf).sum(-1).to(torch.int64) + 1
            for j in range(targets.shape[-1])
        ],
        -1,
    )
    return _Reduced(
        top.indices, p.gather(-1, top.indices), entropy, kl.clamp(min=0.0), rank, p.gather(-1, tgt)
    )


def _lens_reduced(
    model: HookedTransformer,
    resids: list[Tensor],
    bounds: list[Boundary],
    tuned: TunedLens | None,
    targets: Tensor,
    k: int,
) -> _Reduced:
    """Reduce every boundary of one sequence (resids [1, P, d] each) to its summaries.

    The last boundary is projected alone with the forward pass's own shapes, so its
    distribution is bit for bit the model's output.
    """
    final_logits = project(model, resids[-1], bounds[-1], tuned)  # [1, P, V]
    final_logp = final_logits.float().log_softmax(-1)
    final_p = final_logp[0].exp()
    final_neg_h = _neg_entropy_like(final_logp, final_p)[0]
    n_pos, vocab = final_p.shape
    group = max(1, _GROUP_ELEMS // (n_pos * vocab))
    parts: list[_Reduced] = []
    rest = list(zip(resids[:-1], bounds[:-1], strict=True))
    for i in range(0, len(rest), group):
        chunk = rest[i : i + group]
        x = torch.cat([r if tuned is None else tuned.translate(b, r) for r, b in chunk])
        logits = model.unembed_resid(model.ln_final(x))
        parts.append(_reduce(logits, final_p, final_neg_h, targets, k))
    parts.append(_reduce(final_logits, final_p, final_neg_h, targets, k))
    return _Reduced(
        *(torch.cat([getattr(r, f) for r in parts]) for f in _Reduced.__dataclass_fields__)
    )


def _as_sequence(
    model: HookedTransformer, input: str | Tensor | Sequence[int], prepend_bos: bool | None
) -> Tensor:
    if isinstance(input, str):
        return model.to_tokens(input, prepend_bos=prepend_bos)
    t = input if isinstance(input, Tensor) else torch.tensor(list(input), dtype=torch.long)
    if t.ndim == 2 and t.shape[0] != 1:
        raise InputError(
            f"the lens reads one sequence, got a batch of {t.shape[0]}; loop over the rows "
            "or use lens_logits for batches"
        )
    return t.reshape(1, -1).to(model.device)


@torch.no_grad()
def logit_lens(
    model: HookedTransformer,
    input: str | Tensor | Sequence[int],
    *,
    k: int = 10,
    watch: Sequence[str] = (),
    sublayers: bool = False,
    tuned: TunedLens | None = None,
    prepend_bos: bool | None = None,
) -> LensResult:
    """The logit lens (or, with `tuned`, the tuned lens) of one sequence at every boundary.

    `input`: text (tokenized with the model's tokenizer, BOS by the model's default) or token
    ids. `watch`: strings whose rank and probability are tracked at every boundary and position
    (a multi-token string is watched by its first token; the result's `notes` say so).
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    tokens = _as_sequence(model, input, prepend_bos)
    watched = resolve_watch(model, watch)
    bounds = _boundaries(model, sublayers, tuned)
    resids = collect_residuals(model, tokens, bounds)  # validates the tokens
    n_pos = tokens.shape[1]
    k = min(k, model.cfg.d_vocab)
    ids = tokens[0].to(model.device)
    nxt = torch.cat([ids[1:], ids[:1]])  # the last position's "next" is a placeholder, cut below
    targets = torch.cat(
        [
            nxt[:, None],
            torch.tensor([w.id for w in watched], dtype=torch.long, device=ids.device).expand(
                n_pos, -1
            ),
        ],
        1,
    )
    red = _lens_reduced(model, resids, bounds, tuned, targets, k)
    top_ids = red.top_ids.cpu()
    uniq = sorted(set(top_ids.flatten().tolist()))
    name = dict(zip(uniq, token_strs(model, uniq), strict=True))
    top_tokens = [[[name[i] for i in row] for row in layer] for layer in top_ids.tolist()]
    rank = red.rank.long().cpu()
    prob = red.prob.float().cpu()
    return LensResult(
        model=model.cfg.name,
        lens="tuned" if tuned is not None else "logit",
        token_ids=ids.tolist(),
        tokens=token_strs(model, ids.tolist()),
        boundaries=[b.label for b in bounds],
        hooks=[b.hook for b in bounds],
        top_ids=top_ids,
        top_tokens=top_tokens,
        top_probs=red.top_probs.float().cpu(),
        entropy=red.entropy.float().cpu(),
        kl=red.kl.float().cpu(),
        next_rank=rank[:, :-1, 0],
        next_prob=prob[:, :-1, 0],
        watched=watched,
        watch_rank=rank[:, :, 1:],
        watch_prob=prob[:, :, 1:],
        notes=[w.note for w in watched if w.note],
    )

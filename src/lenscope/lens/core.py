"""The logit lens: every boundary's residual through the model's own final norm and unembedding.

One forward pass stops before the unembedding and keeps the residual at every boundary; each is
then projected as the model projects its last one, `unembed(ln_final(x))`, with the norm
recomputed from that residual (never the final layer's cached scale). The last boundary is the
forward pass's own logits, bit for bit. The projections are reduced to top-k, entropy, KL to the
final distribution and ranks of chosen tokens a cache-sized piece at a time (`reduce.py`), so no
boundary's full [pos, vocab] logits are ever held beside another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.lens.boundaries import Boundary, collect_residuals, lens_boundaries
from lenscope.lens.reduce import reduce_lens
from lenscope.lens.result import LensResult
from lenscope.lens.unembed import Precision, check_precision, project
from lenscope.lens.watch import resolve_watch, token_strs
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import isolated

if TYPE_CHECKING:
    from lenscope.lens.tuned import TunedLens


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
@isolated
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
@isolated
def logit_lens(
    model: HookedTransformer,
    input: str | Tensor | Sequence[int],
    *,
    k: int = 10,
    watch: Sequence[str] = (),
    sublayers: bool = False,
    tuned: TunedLens | None = None,
    prepend_bos: bool | None = None,
    precision: Precision = "fp32",
) -> LensResult:
    """The logit lens (or, with `tuned`, the tuned lens) of one sequence at every boundary.

    `input`: text (tokenized with the model's tokenizer, BOS by the model's default) or token
    ids. `watch`: strings whose rank and probability are tracked at every boundary and position
    (a multi-token string is watched by its first token; the result's `notes` say so).
    `precision="bf16"` projects the non-final boundaries in bfloat16 (about 2x faster on CPUs
    with avx512_bf16; logits move by ~1e-2, see docs/lens.md); the last boundary stays the
    model's own output.
    """
    precision = check_precision(precision)
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
    red = reduce_lens(model, resids, bounds, targets, k, tuned=tuned, precision=precision)
    top_ids = red.top_ids.cpu()
    uniq = sorted(set(top_ids.flatten().tolist()))
    name = dict(zip(uniq, token_strs(model, uniq), strict=True))
    top_tokens = [[[name[i] for i in row] for row in layer] for layer in top_ids.tolist()]
    rank = red.rank.long().cpu()
    prob = red.prob.float().cpu()
    return LensResult(
        model=model.cfg.name,
        lens="tuned" if tuned is not None else "logit",
        precision=precision,
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

"""Every boundary's lens reduced to its summaries without holding all its logits at once.

Per boundary and position: top-k ids and probabilities, entropy, KL(final ‖ lens), and the rank
and probability of chosen target tokens. The last boundary's logits are the forward pass's own
(`unembed(ln_final(x))` on the residual the blocks return, with the forward's shapes), reduced
through `log_softmax(...).exp()` exactly as a user would reduce the model's output. The other
boundaries' normalised residuals are stacked and multiplied by the unembedding a block of rows
at a time (`unembed_rows`); each block is reduced in pieces small enough for the CPU's cache,
with one softmax per row and no log-probability matrix:

  lse = max + log Σ exp(z - max)     (from the softmax's value at the arg-max, 1 / Σ exp(z - max))
  entropy = lse - Σ p z              KL(final ‖ lens) = Σ p_f log p_f - Σ p_f z + lse
  rank(t) = 1 + #{v : z_v > z_t}     (strictly higher, counted on the logits themselves)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lenscope.lens.boundaries import Boundary
from lenscope.lens.unembed import Precision, project, top_k, unembed_rows
from lenscope.model.transformer import HookedTransformer

if TYPE_CHECKING:
    from lenscope.lens.tuned import TunedLens

# Logits per unembedding matmul and per reduced piece (cache-sized). For GPT-2's vocabulary 2^23
# logits is 166 rows: the whole reduction took 0.76 s against 0.82 s at 83 rows and 0.91 s at
# 256 (one thread, 12 boundaries x 128 positions).
MM_ELEMS = 1 << 23
PIECE_ELEMS = 1 << 18


@dataclass
class Reduced:
    """Summaries of B boundaries at R positions (k top tokens, T targets)."""

    top_ids: Tensor  # [B, R, k]
    top_probs: Tensor  # [B, R, k]
    entropy: Tensor  # [B, R] nats
    kl: Tensor  # [B, R] KL(final ‖ lens), nats
    rank: Tensor  # [B, R, T]
    prob: Tensor  # [B, R, T]

    @classmethod
    def empty(cls, n_bounds: int, n_rows: int, k: int, n_targets: int) -> Reduced:
        b, r, cpu = n_bounds, n_rows, torch.device("cpu")  # results, gathered on the host
        return cls(
            torch.empty(b, r, k, dtype=torch.long, device=cpu),
            torch.empty(b, r, k, device=cpu),
            torch.empty(b, r, device=cpu),
            torch.empty(b, r, device=cpu),
            torch.empty(b, r, n_targets, dtype=torch.long, device=cpu),
            torch.empty(b, r, n_targets, device=cpu),
        )

    def put(self, b: int, rows: slice, parts: tuple[Tensor, ...]) -> None:
        for name, value in zip(self.__dataclass_fields__, parts, strict=True):
            getattr(self, name)[b, rows] = value


def _ranks(z: Tensor, chosen: Tensor, buf: Tensor) -> Tensor:
    """1 + #{v : z[r, v] > chosen[r, j]} -> [R, T]. Comparing into a float buffer and summing
    is several times faster on CPU than summing a bool tensor (which is cast first)."""
    cols = [torch.gt(z, chosen[:, j : j + 1], out=buf).sum(-1) for j in range(chosen.shape[1])]
    if not cols:
        return torch.empty(z.shape[0], 0, dtype=torch.long, device=z.device)
    return torch.stack(cols, -1).long() + 1


def _final_parts(
    z: Tensor, p: Tensor, neg_h: Tensor, targets: Tensor, k: int, buf: Tensor
) -> tuple[Tensor, ...]:
    """Summaries of the model's own output: p is `log_softmax(z).exp()`, KL is 0."""
    _, top_i = top_k(z, k)
    return (
        top_i,
        p.gather(1, top_i),
        -neg_h,
        torch.zeros_like(neg_h),
        _ranks(z, z.gather(1, targets), buf[: z.shape[0]]),
        p.gather(1, targets),
    )


def _piece_parts(
    z: Tensor, p_f: Tensor, neg_h_f: Tensor, targets: Tensor, k: int, bufs: tuple[Tensor, Tensor]
) -> tuple[Tensor, ...]:
    """Summaries of one piece of a boundary's logits z [n, V] (float32)."""
    n = z.shape[0]
    p = torch.ops.aten._softmax.out(z, -1, False, out=bufs[0][:n])
    top_v, top_i = top_k(z, k)
    lse = top_v[:, 0] - p.gather(1, top_i[:, :1])[:, 0].log()
    entropy = lse - torch.linalg.vecdot(p, z)
    kl = neg_h_f - torch.linalg.vecdot(p_f, z) + lse
    return (
        top_i,
        p.gather(1, top_i),
        entropy.clamp(min=0.0),
        kl.clamp(min=0.0),
        _ranks(z, z.gather(1, targets), bufs[1][:n]),
        p.gather(1, targets),
    )


def _normalised(
    model: HookedTransformer, x: Tensor, bound: Boundary, tuned: TunedLens | None
) -> Tensor:
    if tuned is not None:
        x = tuned.translate(bound, x)
    out: Tensor = model.ln_final(x[None])[0]
    return out


@torch.no_grad()
def reduce_lens(
    model: HookedTransformer,
    resids: list[Tensor],
    bounds: list[Boundary],
    targets: Tensor,
    k: int,
    *,
    tuned: TunedLens | None = None,
    precision: Precision = "fp32",
    rows: Tensor | None = None,
) -> Reduced:
    """Reduce every boundary of one sequence (resids [1, P, d] each, the last one the residual
    the blocks return) at every position, or only at positions `rows`; targets [P, T] are the
    token ids whose rank and probability are wanted at each position."""
    xs = [r[0] for r in resids]
    if rows is not None:
        xs = [x[rows] for x in xs]
        targets = targets[rows]
        final_logits = project(model, xs[-1][None], bounds[-1], tuned)[0]
    else:
        final_logits = project(model, resids[-1], bounds[-1], tuned)[0]
    n_rows, vocab = final_logits.shape
    n_bounds = len(bounds)
    out = Reduced.empty(n_bounds, n_rows, k, targets.shape[1])
    z_f = final_logits.float()
    logp_f = z_f.log_softmax(-1)  # the op a user applies to the model's own logits
    p_f = logp_f.exp()
    neg_h_f = torch.linalg.vecdot(p_f, logp_f)
    piece = max(1, min(n_rows, PIECE_ELEMS // vocab))
    bufs = (z_f.new_empty(piece, vocab), z_f.new_empty(piece, vocab))
    for a in range(0, n_rows, piece):
        span = slice(a, min(n_rows, a + piece))
        parts = _final_parts(z_f[span], p_f[span], neg_h_f[span], targets[span], k, bufs[1])
        out.put(n_bounds - 1, span, parts)
    del logp_f
    if n_bounds == 1:
        return out
    stacked = torch.cat(
        [_normalised(model, x, b, tuned) for x, b in zip(xs[:-1], bounds[:-1], strict=True)]
    )
    total = stacked.shape[0]
    step = max(piece, MM_ELEMS // vocab)
    for s0 in range(0, total, step):
        s1 = min(total, s0 + step)
        z = unembed_rows(model, stacked[s0:s1], precision)
        a = s0
        while a < s1:
            b_idx, pos = divmod(a, n_rows)
            e = min(s1, a + piece, (b_idx + 1) * n_rows)
            span = slice(pos, pos + e - a)
            zp = z[a - s0 : e - s0].float()
            parts = _piece_parts(zp, p_f[span], neg_h_f[span], targets[span], k, bufs)
            out.put(b_idx, span, parts)
            a = e
    return out

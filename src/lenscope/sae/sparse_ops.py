"""Sparse kernels: encoder backward and decoder that touch only the selected latents.

The encoder's dense matmul picks which latents fire (no gradient is needed for the choice).
`gather_preacts` then returns the selected pre-activations as a differentiable function of the
input, b_dec, `W_enc_T` and `b_enc` whose backward is a scatter over the selected latents only:
for B tokens with k latents each it costs O(B k d_in) instead of the O(B d_sae d_in) of a dense
backward. `sparse_decode` is `torch.nn.functional.embedding_bag` in sum mode with per-sample
weights: its forward and both gradients (decoder rows, activation values) are O(B k d_in) too.
The dense reference path (`Codes.dense()` then a matmul) computes the same numbers; tests prove it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a sort on one thread: ATen's parallel sort collapses when cores are shared."""
    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)


@dataclass
class ByLatent:
    """The entries of a `Codes` grouped by latent: perm sorts entries by latent id."""

    perm: Tensor  # [nnz]
    rows: Tensor  # [nnz] row of each entry, in latent order
    offsets: Tensor  # [d_sae] start of each latent's entries


@dataclass
class Codes:
    """Sparse latent activations of `n_rows` tokens: entries of row r are idx/val[offsets[r]:...].

    `val` holds activations after the nonlinearity (zeros are allowed and decode to nothing).
    """

    idx: Tensor  # [nnz] int64 latent ids, grouped by row
    val: Tensor  # [nnz]
    offsets: Tensor  # [n_rows] int64 start of each row's entries
    n_rows: int
    d_sae: int
    _by_latent: ByLatent | None = field(default=None, repr=False)

    @classmethod
    def from_topk(cls, idx: Tensor, val: Tensor, d_sae: int) -> Codes:
        """From [rows, k] indices and values (every row has exactly k entries)."""
        n, k = idx.shape
        offsets = torch.arange(n, device=idx.device, dtype=torch.long) * k
        return cls(idx.reshape(-1), val.reshape(-1), offsets, n, d_sae)

    @classmethod
    def from_mask(cls, pre: Tensor, mask: Tensor, val: Tensor | None = None) -> Codes:
        """From a boolean [rows, d_sae] mask; values taken from `val` (default `pre`)."""
        rows, cols = mask.nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=pre.shape[0])
        offsets = torch.cumsum(counts, 0) - counts
        src = pre if val is None else val
        return cls(cols, src[rows, cols], offsets, pre.shape[0], pre.shape[1])

    def row_ids(self) -> Tensor:
        """The row of every entry, [nnz]."""
        counts = torch.diff(
            self.offsets, append=torch.tensor([self.idx.numel()], device=self.offsets.device)
        )
        return torch.repeat_interleave(torch.arange(self.n_rows, device=self.idx.device), counts)

    def by_latent(self) -> ByLatent:
        """Entries grouped by latent (computed once, shared by `with_values` copies)."""
        if self._by_latent is None:
            with _one_thread():
                perm = torch.sort(self.idx).indices
            counts = torch.bincount(self.idx, minlength=self.d_sae)
            self._by_latent = ByLatent(perm, self.row_ids()[perm], torch.cumsum(counts, 0) - counts)
        return self._by_latent

    def dense(self) -> Tensor:
        """[n_rows, d_sae] dense activations (differentiable in `val`)."""
        out = self.val.new_zeros(self.n_rows, self.d_sae)
        return out.index_put((self.row_ids(), self.idx), self.val, accumulate=True)

    def with_values(self, val: Tensor) -> Codes:
        return Codes(self.idx, val, self.offsets, self.n_rows, self.d_sae, self.by_latent())

    def l0(self) -> Tensor:
        """Active (nonzero) latents per row, [n_rows]."""
        rows = self.row_ids()
        nz = (self.val != 0).to(torch.float32)
        return torch.zeros(self.n_rows, device=self.val.device).index_add_(0, rows, nz)


def scatter_rows(bl: ByLatent, weights: Tensor, src: Tensor) -> Tensor:
    """out[i] = sum over entries j of latent i of weights_j * src[row_j]; out is [d_sae, d].

    With the entries grouped by latent this is an embedding_bag forward over `src` (one bag per
    latent), O(nnz d) with no [d_sae, d] scratch and no atomic adds.
    """
    w = weights.detach()[bl.perm].contiguous()
    return F.embedding_bag(bl.rows, src.contiguous(), bl.offsets, mode="sum", per_sample_weights=w)


def _weighted_dots(
    idx: Tensor, offsets: Tensor, table: Tensor, grad: Tensor, like: Tensor
) -> Tensor:
    """d/dw of embedding_bag = table[idx_j] . grad[row_j] for every entry j, [nnz]."""
    with torch.enable_grad():
        w = like.detach().requires_grad_(True)
        out = F.embedding_bag(idx, table.detach(), offsets, mode="sum", per_sample_weights=w)
        (g,) = torch.autograd.grad(out, w, grad)
    return g


class _GatherPreacts(torch.autograd.Function):
    """Selected pre-activations (xn[row_j] - b_dec) . W_enc_T[idx_j] + b_enc[idx_j]."""

    @staticmethod
    def forward(
        ctx: Any,
        values: Tensor,
        xn: Tensor,
        b_dec: Tensor,
        W_enc_T: Tensor,
        b_enc: Tensor,
        codes: Codes,
    ) -> Tensor:
        ctx.save_for_backward(xn, b_dec, W_enc_T)
        ctx.codes = codes
        return values.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        xn, b_dec, W_enc_T = ctx.saved_tensors
        codes: Codes = ctx.codes
        grad = grad.contiguous()
        need_x, need_bd, need_w, need_b = ctx.needs_input_grad[1:5]
        g_x = g_bd = g_w = g_b = None
        if need_x:
            g_x = F.embedding_bag(
                codes.idx, W_enc_T, codes.offsets, mode="sum", per_sample_weights=grad
            )
        if need_w:
            g_w = scatter_rows(codes.by_latent(), grad, xn.detach() - b_dec.detach())
        if need_b or need_bd:
            g_b = torch.zeros(codes.d_sae, dtype=grad.dtype, device=grad.device)
            g_b.index_add_(0, codes.idx, grad)
            if need_bd:  # sum over entries of -grad_j W_enc_T[idx_j], reduced per latent first
                g_bd = -(g_b @ W_enc_T)
        return None, g_x, g_bd, g_w, g_b if need_b else None, None


class _SparseDecode(torch.autograd.Function):
    """sum_j val_j W_dec[idx_j] per row; backward touches only the selected decoder rows."""

    @staticmethod
    def forward(ctx: Any, vals: Tensor, W_dec: Tensor, codes: Codes) -> Tensor:
        ctx.save_for_backward(vals, W_dec)
        ctx.codes = codes
        return F.embedding_bag(codes.idx, W_dec, codes.offsets, mode="sum", per_sample_weights=vals)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        vals, W_dec = ctx.saved_tensors
        codes: Codes = ctx.codes
        grad = grad.contiguous()
        g_v = g_w = None
        if ctx.needs_input_grad[0]:
            g_v = _weighted_dots(codes.idx, codes.offsets, W_dec, grad, vals)
        if ctx.needs_input_grad[1]:
            g_w = scatter_rows(codes.by_latent(), vals, grad)
        return g_v, g_w, None


def gather_preacts(
    pre: Tensor, xn: Tensor, b_dec: Tensor, W_enc_T: Tensor, b_enc: Tensor, codes: Codes
) -> Tensor:
    """The pre-activations of the selected latents, [nnz], differentiable with sparse backward.

    `pre` is the dense [rows, d_sae] pre-activation (xn - b_dec) W_enc_T^T + b_enc computed
    without gradient; its selected entries are the forward values. Gradients reach the input
    `xn`, `b_dec`, `W_enc_T` [d_sae, d_in] and `b_enc`, each touching only selected latents.
    """
    values = pre[codes.row_ids(), codes.idx] if codes.idx.numel() else pre.new_zeros(0)
    out: Tensor = _GatherPreacts.apply(values, xn, b_dec, W_enc_T, b_enc, codes)
    return out


def sparse_decode(codes: Codes, W_dec: Tensor) -> Tensor:
    """sum_j val_j * W_dec[idx_j] per row, [n_rows, d_in] (no bias), sparse backward."""
    if codes.idx.numel() == 0:
        return W_dec.new_zeros(codes.n_rows, W_dec.shape[1]) + 0 * W_dec.sum()
    if not (torch.is_grad_enabled() and (codes.val.requires_grad or W_dec.requires_grad)):
        return F.embedding_bag(
            codes.idx, W_dec, codes.offsets, mode="sum", per_sample_weights=codes.val
        )
    out: Tensor = _SparseDecode.apply(codes.val, W_dec, codes)
    return out

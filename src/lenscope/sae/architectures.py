"""The architecture registry: how each SAE kind turns pre-activations into sparse codes.

Every architecture shares the same parameters (W_enc, b_enc, W_dec, b_dec and a per-latent
`threshold` buffer) and the same affine maps; only the activation differs:

- topk: keep each token's k largest pre-activations, then ReLU (the TopK paper).
- batchtopk: keep the batch's (tokens * k) largest ReLU'd pre-activations during training; at
  inference a latent fires when its pre-activation exceeds `threshold` (a running estimate of the
  smallest selected activation), as in Bussmann et al. and SAELens.
- relu: ReLU, trained with an L1 penalty (the paper's baseline).
- jumprelu: ReLU gated by a per-latent threshold (inference only; imported from SAELens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.sae.sparse_ops import Codes

KthLargest = Callable[[Tensor, int], Tensor]


def _local_kth(values: Tensor, n: int) -> Tensor:
    n = min(n, values.numel())
    return values.flatten().topk(n, sorted=False).values.min()


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    uses_k: bool
    trainable: bool
    sparse_training: bool  # trained through the sparse kernels (else the dense path)
    saelens_name: str  # its architecture name in SAELens' cfg.json

    def codes(self, pre: Tensor, k: int | None, threshold: Tensor) -> Codes:
        """Inference: sparse codes of [rows, d_sae] pre-activations."""
        if self.name == "topk":
            assert k is not None
            vals, idx = pre.topk(k, dim=-1, sorted=False)
            return Codes.from_topk(idx, vals.relu(), pre.shape[1])
        if self.name == "relu":
            return Codes.from_mask(pre, pre > 0)
        return Codes.from_mask(pre, (pre > threshold) & (pre > 0))

    def train_codes(
        self, pre: Tensor, k: int | None, kth_largest: KthLargest = _local_kth
    ) -> Codes:
        """Training-time selection (no gradient); values are the selected pre-activations.

        BatchTopK keeps the (rows * k) largest positive pre-activations of the (global) batch;
        `kth_largest(values, n)` returns the n-th largest over all data-parallel ranks.
        """
        if self.name == "topk":
            assert k is not None
            vals, idx = pre.topk(k, dim=-1, sorted=False)
            return Codes.from_topk(idx, vals, pre.shape[1])
        if self.name == "batchtopk":
            assert k is not None
            relu = pre.relu()
            t = kth_largest(relu, pre.shape[0] * k)
            return Codes.from_mask(pre, (relu >= t) & (relu > 0))
        raise InputError(f"{self.name} SAEs are not trained through sparse codes")

    def dense(self, pre: Tensor, k: int | None, threshold: Tensor) -> Tensor:
        """Reference: dense activations [rows, d_sae] computed without any sparse kernel."""
        if self.name == "topk":  # exactly k per row, as `codes` (ties at the k-th: any k)
            assert k is not None
            vals, idx = pre.topk(k, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(1, idx, vals.relu())
        if self.name == "relu":
            return pre.relu()
        return torch.where(pre > threshold, pre, torch.zeros_like(pre)).relu()


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "topk",
            "TopK: each token's k largest pre-activations, then ReLU (OpenAI's TopK SAE)",
            uses_k=True,
            trainable=True,
            sparse_training=True,
            saelens_name="topk",
        ),
        Architecture(
            "batchtopk",
            "BatchTopK: the batch's tokens*k largest activations; a threshold at inference",
            uses_k=True,
            trainable=True,
            sparse_training=True,
            saelens_name="jumprelu",
        ),
        Architecture(
            "relu",
            "ReLU with an L1 sparsity penalty (the baseline of the TopK paper)",
            uses_k=False,
            trainable=True,
            sparse_training=False,
            saelens_name="standard",
        ),
        Architecture(
            "jumprelu",
            "ReLU gated by a per-latent threshold (inference only; imported from SAELens)",
            uses_k=False,
            trainable=False,
            sparse_training=False,
            saelens_name="jumprelu",
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise InputError(
            f"unknown SAE architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name]

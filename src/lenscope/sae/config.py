"""Typed configuration of a sparse autoencoder (what it is) and of its training (how it is made).

`SAEConfig` travels with every SAE artifact; `TrainConfig` is recorded in the manifest's
provenance and in checkpoints, where a resumed run must match it exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Self, cast

import torch

from lenscope.errors import InputError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16}


class _DictForm:
    """`to_dict` / `from_dict` of a config dataclass: its fields as a JSON-ready dict, and back
    (keys the class does not know, from other versions, are dropped)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast("DataclassInstance", self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cast("type[DataclassInstance]", cls))}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class SAEConfig(_DictForm):
    """What an SAE is: architecture, sizes, sparsity and where in which model it reads.

    architecture: one of `lenscope.sae.ARCHITECTURES` (topk, batchtopk, relu, jumprelu).
    k: active latents per token (TopK) or on average per token over a batch (BatchTopK).
    normalize: parameter-free input normalisation of OpenAI's released GPT-2 SAEs: each token's
      activation is centred and divided by (its standard deviation + 1e-5) before encoding and
      the reconstruction is mapped back.
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"
    k: int | None = 32
    normalize: bool = False
    hook_name: str = ""
    model_name: str = ""
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        from lenscope.sae.architectures import get_architecture

        arch = get_architecture(self.architecture)
        for name in ("d_in", "d_sae"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if arch.uses_k:
            if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
                raise InputError(f"{self.architecture} needs k >= 1 active latents, got {self.k!r}")
            if self.k > self.d_sae:
                raise InputError(
                    f"k = {self.k} is larger than the latent count {self.d_sae}; "
                    "use a smaller k or more latents"
                )

    def with_(self, **kw: Any) -> SAEConfig:
        return replace(self, **kw)


@dataclass(frozen=True)
class TrainConfig(_DictForm):
    """How an SAE is trained. Defaults follow the TopK paper (Adam, eps 6.25e-10, AuxK 1/32).

    lr None: 2e-4 / sqrt(d_sae / 2**14), the 1/sqrt(latents) scaling of the paper and sparsify.
    auxk None: k_aux = d_in // 2 (the paper's heuristic); auxk_coef is its loss coefficient.
    dead_tokens None: min(10M, max(batch_size, total training tokens // 10)); a latent that has
      not fired in that many tokens is dead and feeds the AuxK loss.
    multi_topk: also decode with the top 4k latents and add multi_topk_coef times that loss.
    l1_coefficient: the ReLU baseline's penalty, in units of the normalised activations.
    buffer_tokens: size of the shuffling buffer (one block of activations from forward passes).
    dense: train through the dense reference path instead of the sparse kernels (tests).
    """

    steps: int = 1000
    batch_size: int = 4096
    lr: float | None = None
    adam_eps: float = 6.25e-10
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = None
    use_auxk: bool = True
    auxk: int | None = None
    auxk_coef: float = 1 / 32
    dead_tokens: int | None = None
    multi_topk: bool = False
    multi_topk_coef: float = 1 / 8
    l1_coefficient: float = 1.0
    threshold_lr: float = 0.01
    buffer_tokens: int = 65536
    ctx: int | None = None
    forward_batch: int = 16
    seed: int = 0
    ckpt_every: int = 100
    dense: bool = False

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "buffer_tokens", "forward_batch", "ckpt_every")
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise InputError(f"lr must lie in (0, 1), got {self.lr}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.auxk is not None and self.auxk < 1:
            raise InputError(f"auxk (k_aux) must be >= 1, got {self.auxk}")
        if self.dead_tokens is not None and self.dead_tokens < 1:
            raise InputError(f"dead_tokens must be >= 1, got {self.dead_tokens}")
        if self.ctx is not None and self.ctx < 1:
            raise InputError(f"ctx must be >= 1, got {self.ctx}")
        for name in ("auxk_coef", "multi_topk_coef", "l1_coefficient", "threshold_lr"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise InputError(f"{name} must be a finite number >= 0, got {v}")

    def resolved_lr(self, d_sae: int) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(d_sae / 2**14)

    def resolved_auxk(self, d_in: int, d_sae: int) -> int:
        return min(self.auxk if self.auxk is not None else max(1, d_in // 2), d_sae)

    def resolved_dead_tokens(self) -> int:
        if self.dead_tokens is not None:
            return self.dead_tokens
        total = self.steps * self.batch_size
        return min(10_000_000, max(self.batch_size, total // 10))

"""SAE latents as debugger nodes: a small protocol and a request-scoped, exact splice.

Anything with `encode(x) -> latents` and a decoder `W_dec` [d_sae, d_model] plugs in as a
`LatentSource` at a residual-stream hook (lenscope's `SparseAutoencoder` and SAELens' `SAE` are
adapted by `LatentSource.of`). Latent j at a token writes `f_j * scale(x) * W_dec[j]` into the
stream (`scale` is 1, or the token's std for SAEs that normalise their input).

The splice keeps the model's output unchanged: at the hook, `out = x + ((f' - f) * scale) @ W_dec`
where `f = encode(x)` and `f'` is `f` after latent edits (ablations). Without edits `out == x`, so
latents are an exact alternative decomposition of the residual (with the SAE's bias and error),
gradients reach each latent as `scale * W_dec[j] . grad`, and gradients upstream are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.interventions.edits import Edit, apply_all
from lenscope.nodes import latent_site


@runtime_checkable
class LatentDictionary(Protocol):
    """The minimum an SAE needs to offer to become debugger nodes."""

    W_dec: Tensor

    def encode(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class LatentSource:
    hook_name: str
    encode: Callable[[Tensor], Tensor]  # [..., d_model] -> [..., d_sae]
    W_dec: Tensor  # [d_sae, d_model]
    scale: Callable[[Tensor], Tensor] | None = None  # [..., d_model] -> [..., 1]
    bias: Tensor | None = None  # b_dec: what the reconstruction adds besides the latents

    def __post_init__(self) -> None:
        latent_site(self.hook_name)  # raises for hooks that are not in the residual stream
        if self.W_dec.ndim != 2:
            raise InputError(f"SAE at {self.hook_name}: W_dec must be [d_sae, d_model]")

    @property
    def d_sae(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.W_dec.shape[1])

    def write_scale(self, x: Tensor) -> Tensor:
        return torch.ones_like(x[..., :1]) if self.scale is None else self.scale(x)

    def latents(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.encode(x.detach()).to(x.dtype)

    @classmethod
    def of(cls, sae: Any, hook_name: str | None = None) -> LatentSource:
        """Adapt an SAE object: lenscope's `SparseAutoencoder`, SAELens' `SAE`, or any
        `LatentDictionary` (then `hook_name` is required)."""
        if isinstance(sae, LatentSource):
            return sae
        cfg = getattr(sae, "cfg", None)
        hook = hook_name or getattr(cfg, "hook_name", None) or _saelens_hook(cfg)
        if not hook:
            raise InputError("the SAE does not say which hook it reads; pass hook_name")
        if not isinstance(sae, LatentDictionary):
            raise InputError("an SAE needs encode(x) and W_dec [d_sae, d_model] to become nodes")
        W_dec = sae.W_dec.detach()
        scale = None
        if getattr(cfg, "normalize", False) and hasattr(sae, "normalize"):

            def scale(x: Tensor) -> Tensor:
                stats = sae.normalize(x.to(W_dec.dtype))[1]
                return stats.std.to(x.dtype)  # type: ignore[no-any-return]

        b = getattr(sae, "b_dec", None)
        return cls(hook, sae.encode, W_dec, scale, None if b is None else b.detach())


def _saelens_hook(cfg: Any) -> str | None:
    meta = getattr(cfg, "metadata", None)
    hook = getattr(meta, "hook_name", None) if meta is not None else None
    return hook if isinstance(hook, str) and hook else None


def splice_hook(
    source: LatentSource,
    edits: Sequence[Edit] = (),
    sink: MutableMapping[str, Tensor] | None = None,
) -> Callable[[Tensor, Any], Tensor]:
    """The forward hook splicing `source` at its hook point; latents after edits go to `sink`."""

    def fn(x: Tensor, hook: Any) -> Tensor:
        if x.shape[-1] != source.d_model:
            raise InputError(
                f"the SAE at {source.hook_name} reads {source.d_model}-dimensional activations, "
                f"the model has {x.shape[-1]}; use an SAE trained on this model"
            )
        f = source.latents(x).requires_grad_(torch.is_grad_enabled())
        f2 = apply_all(f, edits) if edits else f
        if sink is not None:
            sink[source.hook_name] = f2
            sink[source.hook_name + ":input"] = x.detach()
        if not edits and sink is None:
            return x
        scale = source.write_scale(x.detach())
        delta = ((f2 - f.detach()) * scale) @ source.W_dec.to(x.dtype)
        return x + delta

    return fn

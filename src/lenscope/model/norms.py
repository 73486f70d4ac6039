"""LayerNorm and RMSNorm in one place: the hooked module, its scale, the norm with that scale
frozen, and the folding of a norm's weight and bias into the matrices that read it.

A norm maps x to `C(x) / s(x) * w + b`, where C centres along d_model (LayerNorm; the identity
for RMSNorm), `s(x) = sqrt(mean(C(x)^2) + eps)` is one positive number per position, and `b` is
zero for RMSNorm. With `s` frozen the norm is affine in x: `push` is its linear part (what a
write into the residual becomes at the norm's output), `pull` is the adjoint (a gradient at the
output carried back to the input), `push(x) . g == x . pull(g)`. Everything that reads the
residual through a norm (the model's forward, the cache's stacks, attribution's frozen norms,
circuits' folded weights, records' output effects) uses these functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lenscope.model.config import ModelConfig
from lenscope.model.hooks import HookPoint


class Norm(nn.Module):
    """LayerNorm, RMSNorm or identity, with `hook_scale` and `hook_normalized`."""

    def __init__(self, cfg: ModelConfig, d: int) -> None:
        super().__init__()
        self.kind = cfg.normalization
        self.eps = cfg.eps
        self.d = d
        self.w: nn.Parameter | None = nn.Parameter(torch.ones(d)) if self.kind != "none" else None
        self.b: nn.Parameter | None = nn.Parameter(torch.zeros(d)) if self.kind == "LN" else None
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    @property
    def centres(self) -> bool:
        """Whether the norm subtracts the mean along d_model (LayerNorm)."""
        return self.kind == "LN"

    def forward(self, x: Tensor) -> Tensor:
        if self.w is None:
            return x
        if not (self.hook_scale.active or self.hook_normalized.active):
            if self.kind == "LN":
                return F.layer_norm(x, (self.d,), self.w, self.b, self.eps)
            return F.rms_norm(x, (self.d,), self.w, self.eps)
        xc = center(x) if self.centres else x
        scale = self.hook_scale.run(_rms(xc, self.eps))
        y = self.hook_normalized.run(xc / scale) * self.w
        return y + self.b if self.b is not None else y


def center(x: Tensor, dim: int = -1) -> Tensor:
    """x minus its mean along `dim` (d_model by default)."""
    return x - x.mean(dim, keepdim=True)


def _rms(xc: Tensor, eps: float) -> Tensor:
    return (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def param_like(t: Tensor, like: Tensor) -> Tensor:
    """A parameter on `like`'s device and dtype, tracked by autograd only when `like` is."""
    t = t.to(like.device, like.dtype)
    return t if like.requires_grad else t.detach()


# ---- applying a norm ---------------------------------------------------------------------------
def norm_scale(norm: Norm, x: Tensor) -> Tensor:
    """The scale the norm divides x by at each position: [..., 1] (ones for no normalisation)."""
    if norm.w is None:
        return torch.ones_like(x[..., :1])
    return _rms(center(x) if norm.centres else x, norm.eps)


def normalize(norm: Norm, x: Tensor) -> Tensor:
    """`norm(x)` with its scale recomputed from x (as the hooked forward computes it), without
    running any hook attached to the norm."""
    if norm.w is None:
        return x
    xc = center(x) if norm.centres else x
    y = xc / _rms(xc, norm.eps) * param_like(norm.w, x)
    return y + param_like(norm.b, x) if norm.b is not None else y


def push(norm: Norm, scale: Tensor | None, x: Tensor) -> Tensor:
    """The linear part of the norm's output due to a write x, with the scale frozen at `scale`
    ([..., 1], broadcast against x): centred (LayerNorm), divided by the scale, times the
    weight. `scale=None` leaves the division out: the direction as the norm's reader sees it,
    up to one positive number per position."""
    if norm.w is None:
        return x
    xc = center(x) if norm.centres else x
    if scale is not None:
        xc = xc / scale
    return xc * param_like(norm.w, x)


def pull(norm: Norm, scale: Tensor, g: Tensor) -> Tensor:
    """A gradient `g` at the norm's output carried back to its input, scale frozen (the adjoint
    of `push`)."""
    if norm.w is None:
        return g
    y = g * param_like(norm.w, g) / scale
    return center(y) if norm.centres else y


# ---- folding a norm into the weights that read it -------------------------------------------------
def norm_params(
    norm: Norm | None,
    d: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """A norm's weight and bias, detached, in `dtype` on `device` (ones / zeros where it has
    none)."""
    w = None if norm is None else norm.w
    b = None if norm is None else norm.b
    w_out = torch.ones(d, dtype=dtype, device=device) if w is None else w.detach().to(device, dtype)
    b_out = (
        torch.zeros(d, dtype=dtype, device=device) if b is None else b.detach().to(device, dtype)
    )
    return w_out, b_out


def fold_norm(norm: Norm | None, W: Tensor, b: Tensor, centre: bool) -> tuple[Tensor, Tensor]:
    """Fold a norm into a matrix that reads its output, as TransformerLens' `fold_layer_norm`:
    `W [..., d_model, out]` -> `diag(w) W` and `b [..., out]` -> `b + b_norm W`. With `centre`
    (LayerNorm) the folded W is then centred along d_model: what the norm passes on (before its
    weight) has mean zero along d_model, so that mean of W reads nothing."""
    w_n, b_n = norm_params(norm, W.shape[-2], W.dtype, W.device)
    b = b + torch.einsum("d,...do->...o", b_n, W)
    W = W * w_n[:, None]
    return (center(W, -2) if centre else W), b

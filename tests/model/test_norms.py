"""`lenscope.model.norms` against torch's own LayerNorm / RMSNorm and exact identities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lenscope import ModelConfig
from lenscope.model.hooks import HookPoint
from lenscope.model.norms import (
    Norm,
    center,
    fold_norm,
    norm_params,
    norm_scale,
    normalize,
    param_like,
    pull,
    push,
)

D = 12


def make_norm(kind: str, seed: int = 0) -> Norm:
    cfg = ModelConfig(
        n_layers=1,
        d_model=D,
        n_heads=2,
        d_vocab=10,
        n_ctx=8,
        eps=1e-3,
        normalization=kind,  # type: ignore[arg-type]
    )
    norm = Norm(cfg, D).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in norm.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return norm


def torch_norm(norm: Norm, x: Tensor) -> Tensor:
    """torch's own implementation of the same norm (the reference)."""
    if norm.kind == "LN":
        return F.layer_norm(x, (D,), norm.w, norm.b, norm.eps)
    if norm.kind == "RMS":
        return F.rms_norm(x, (D,), norm.w, norm.eps)
    return x


KINDS = ["LN", "RMS", "none"]


def rand(*shape: int, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(*shape, generator=g, dtype=torch.float64) + 1


@pytest.mark.parametrize("kind", KINDS)
def test_hooked_forward_and_normalize_match_torch(kind: str) -> None:
    norm = make_norm(kind)
    x = rand(2, 5, D)
    want = torch_norm(norm, x)
    torch.testing.assert_close(norm(x), want)  # fast path
    seen: list[Tensor] = []

    def keep(t: Tensor, hook: HookPoint) -> None:
        seen.append(t)

    norm.hook_scale.fwd_hooks.append(keep)
    torch.testing.assert_close(norm(x), want)  # hooked path, scale exposed
    torch.testing.assert_close(normalize(norm, x), want)  # no hook runs
    if kind == "none":
        assert not seen
        torch.testing.assert_close(norm_scale(norm, x), torch.ones(2, 5, 1, dtype=x.dtype))
        return
    assert len(seen) == 1
    xc = x - x.mean(-1, keepdim=True) if kind == "LN" else x
    brute = torch.sqrt((xc**2).mean(-1, keepdim=True) + norm.eps)
    torch.testing.assert_close(seen[0], brute)
    torch.testing.assert_close(norm_scale(norm, x), brute)


@pytest.mark.parametrize("kind", KINDS)
def test_push_of_the_parts_sums_to_the_norm_minus_its_bias(kind: str) -> None:
    """With the scale frozen at the whole residual's, the parts' pushes add up exactly."""
    norm = make_norm(kind)
    parts = rand(4, 3, D)
    whole = parts.sum(0)
    s = norm_scale(norm, whole)
    bias = norm.b if norm.b is not None else 0.0
    torch.testing.assert_close(push(norm, s, parts).sum(0) + bias, torch_norm(norm, whole))


@pytest.mark.parametrize("kind", KINDS)
def test_pull_is_the_adjoint_of_push(kind: str) -> None:
    norm = make_norm(kind)
    x, g = rand(3, D, seed=2), rand(3, D, seed=3)
    s = norm_scale(norm, rand(3, D, seed=4))
    lhs = (push(norm, s, x) * g).sum(-1)
    rhs = (x * pull(norm, s, g)).sum(-1)
    torch.testing.assert_close(lhs, rhs)
    # and it is the gradient of the frozen-scale norm
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((push(norm, s, xr) * g).sum(), xr)
    torch.testing.assert_close(grad, pull(norm, s, g))


def test_push_without_a_scale_is_the_direction_the_reader_sees() -> None:
    norm = make_norm("LN")
    x = rand(5, D)
    assert norm.w is not None
    torch.testing.assert_close(push(norm, None, x), (x - x.mean(-1, keepdim=True)) * norm.w)
    torch.testing.assert_close(push(norm, None, x), push(norm, torch.ones(5, 1).double(), x))


@pytest.mark.parametrize("kind", ["LN", "RMS"])
def test_fold_norm_reads_the_normalised_input_like_the_unfolded_reader(kind: str) -> None:
    """norm(x) @ W + b == (C(x) / s) @ W' + b' for a reader W [heads, d, out] (brute force)."""
    norm = make_norm(kind)
    W, b = rand(3, D, 5, seed=5), rand(3, 5, seed=6)
    W2, b2 = fold_norm(norm, W, b, centre=kind == "LN")
    x = rand(7, D, seed=7)
    xc = x - x.mean(-1, keepdim=True) if kind == "LN" else x
    unit = xc / norm_scale(norm, x)
    want = torch.einsum("pd,hdo->hpo", torch_norm(norm, x), W) + b[:, None]
    got = torch.einsum("pd,hdo->hpo", unit, W2) + b2[:, None]
    torch.testing.assert_close(got, want)
    if kind == "LN":
        assert float(W2.mean(-2).abs().max()) < 1e-14
    w, bn = norm_params(norm, D)
    scaled = W * w[:, None]
    want_W = scaled - scaled.mean(-2, keepdim=True) if kind == "LN" else scaled
    torch.testing.assert_close(W2, want_W)
    torch.testing.assert_close(b2, b + torch.einsum("d,hdo->ho", bn, W))


def test_norm_params_of_no_norm_are_the_identity() -> None:
    w, b = norm_params(None, 4)
    assert w.tolist() == [1.0] * 4 and b.tolist() == [0.0] * 4
    assert w.dtype == torch.float64
    assert norm_params(make_norm("none"), 3, torch.float32)[0].dtype == torch.float32


def test_center_and_param_like() -> None:
    x = rand(2, 3, D)
    torch.testing.assert_close(center(x).mean(-1), torch.zeros(2, 3, dtype=x.dtype))
    torch.testing.assert_close(center(x, 0).mean(0), torch.zeros(3, D, dtype=x.dtype))
    p = torch.nn.Parameter(torch.ones(D))
    assert not param_like(p, x).requires_grad and param_like(p, x).dtype == torch.float64
    assert param_like(p, x.clone().requires_grad_(True)).requires_grad

"""lenscope.linalg.linear against float64 `@` (values and gradients) and its dispatch rules."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from lenscope import linalg
from lenscope.linalg import MIN_MACS, linear, linear_t, onednn_enabled, set_onednn
from tests.onednn import count_onednn_calls

needs_onednn = pytest.mark.skipif(
    not linalg._AVAILABLE, reason="this torch build has no oneDNN linear kernel"
)


@pytest.fixture
def onednn() -> Iterator[None]:
    previous = set_onednn(True)
    yield
    set_onednn(previous)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(96, 256), (2, 48, 256)])
def test_values_and_gradients_match_float64(
    onednn: None, monkeypatch: pytest.MonkeyPatch, bias: bool, shape: tuple[int, ...]
) -> None:
    calls = count_onednn_calls(monkeypatch)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).requires_grad_(True)
    w = torch.randn(256, 512, generator=g).requires_grad_(True)
    b = torch.randn(512, generator=g).requires_grad_(True) if bias else None
    y = linear(x, w, b)
    assert calls, "a matmul of this size must take the oneDNN path"
    xd, wd = x.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    bd = b.detach().double().requires_grad_(True) if b is not None else None
    ref = xd @ wd + (bd if bd is not None else 0)
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-4)
    up = torch.randn(y.shape, generator=g)
    got = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], up)
    want = torch.autograd.grad(ref, [t for t in (xd, wd, bd) if t is not None], up.double())
    for a, e in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), e, rtol=0, atol=2e-3)
    assert len(calls) >= 3  # the forward and both backward matmuls


@needs_onednn
def test_transposed_weight_and_strided_input(onednn: None) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1024, generator=g)[:, ::2]  # non-contiguous rows
    w_t = torch.randn(300, 512, generator=g)
    b = torch.randn(300, generator=g)
    ref = x.double() @ w_t.double().t() + b.double()
    torch.testing.assert_close(linear_t(x, w_t, b).double(), ref, rtol=0, atol=1e-4)


@needs_onednn
def test_dispatch_rules(onednn: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_onednn_calls(monkeypatch)
    w = torch.randn(256, 512)
    tiny = torch.randn(1, 8)
    assert MIN_MACS > 8 * 8
    linear(tiny, torch.randn(8, 8))  # too small to repay the call
    linear(torch.randn(64, 256, dtype=torch.float64), w.double())  # float64: torch's own
    linear(torch.randn(64, 256), w, torch.randn(512, dtype=torch.float64))  # mixed dtypes
    assert calls == []
    out = linear(torch.randn(64, 256, dtype=torch.bfloat16), w.bfloat16())
    # bfloat16 goes to oneDNN only where the CPU has bf16 instructions (else oneDNN refuses it)
    bf16 = [1] if torch.ops.mkldnn._is_mkldnn_bf16_supported() else []
    assert out.dtype == torch.bfloat16 and calls == bf16
    linear(torch.randn(64, 256), w)
    assert calls == [*bf16, 1]
    set_onednn(False)
    assert not onednn_enabled()
    x = torch.randn(64, 256)
    torch.testing.assert_close(linear(x, w), x @ w)
    assert calls == [*bf16, 1]


def test_empty_input_and_fallback_gradients() -> None:
    w = torch.randn(16, 4, requires_grad=True)
    assert linear(torch.randn(0, 16), w).shape == (0, 4)
    x = torch.randn(3, 16, dtype=torch.float64, requires_grad=True)
    wd = w.detach().double().requires_grad_(True)
    (gx,) = torch.autograd.grad(linear(x, wd).sum(), [x])
    torch.testing.assert_close(gx, wd.sum(1).expand(3, -1).detach())


@needs_onednn
def test_func_transforms_and_forward_ad_fall_back_to_torch(onednn: None) -> None:
    """jvp / vmap / forward AD through a large linear with trainable weights (an SAE encoder in
    a latent trace) give torch's own results instead of failing in the oneDNN op."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 30, 256, generator=g)
    tangent = torch.randn(1, 30, 256, generator=g)
    w = torch.nn.Parameter(torch.randn(256, 2048, generator=g))
    b = torch.nn.Parameter(torch.randn(2048, generator=g))
    assert x.numel() * 2048 >= MIN_MACS
    out, jv = torch.func.jvp(lambda t: linear(t, w, b), (x,), (tangent,))
    torch.testing.assert_close(out, x @ w + b, rtol=0, atol=1e-4)
    torch.testing.assert_close(jv, tangent @ w.detach(), rtol=0, atol=1e-4)
    batched = torch.func.vmap(lambda t: linear(t, w))(x.expand(3, -1, -1))
    torch.testing.assert_close(batched, (x @ w).expand(3, -1, -1), rtol=0, atol=1e-4)
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        dual = fwAD.make_dual(x, tangent)
        got = fwAD.unpack_dual(linear(dual, w.detach())).tangent
    torch.testing.assert_close(got, tangent @ w.detach(), rtol=0, atol=1e-4)


@needs_onednn
def test_second_derivatives_match_torch(onednn: None) -> None:
    """create_graph=True: the backward is itself differentiable (Hessian-vector products)."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 256, generator=g)
    w0 = torch.randn(256, 512, generator=g) / 16
    v = torch.randn(64, 256, generator=g)

    def hvp(fn: object) -> torch.Tensor:
        x = x0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        y = fn(x, w)  # type: ignore[operator]
        (gx,) = torch.autograd.grad((y**2).sum(), [x], create_graph=True)
        (h,) = torch.autograd.grad((gx * v).sum(), [w])
        return h

    torch.testing.assert_close(hvp(linear), hvp(lambda x, w: x @ w), rtol=1e-4, atol=1e-3)


def test_onednn_default_follows_the_cpu_unless_the_environment_decides() -> None:
    """oneDNN is the default only where the CPU has AVX-512 (measured faster there, slower on an
    AVX2-only EPYC); LENSCOPE_ONEDNN overrides either way."""
    from lenscope.linalg import _default_on

    assert _default_on(None, "AVX512") and _default_on("", "AVX512")
    assert not _default_on(None, "AVX2") and not _default_on(None, "DEFAULT")
    assert _default_on("1", "AVX2") and _default_on("true", "AVX2") and _default_on(" ON ", "AVX2")
    assert not _default_on("0", "AVX512") and not _default_on("false", "AVX512")
    cap = torch.backends.cpu.get_cpu_capability()
    want = linalg._AVAILABLE and _default_on(os.environ.get("LENSCOPE_ONEDNN"), cap)
    script = "from lenscope import linalg; print(linalg.onednn_enabled())"
    got = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert got == str(want)

"""Dense matmuls at the CPU's full rate: `linear(x, w, b) = x @ w + b`, exact in float32.

torch's `@` on CPU calls MKL's sgemm, which does not use AVX-512 on AMD processors; oneDNN's
linear kernel (shipped inside every x86 torch wheel) does. On the 2-core AMD EPYC this project
is built on it ran float32 matmuls of the model's shapes 1.8-2.8x faster (`benchmarks/matmul.py`
measures it on yours). `linear` sends float32 and bfloat16 CPU matmuls large enough to repay
oneDNN's call overhead there, and everything else (float64, CUDA, tiny shapes, mixed dtypes,
`torch.func` transforms and forward-mode AD) to torch's own `@` / `addmm`. Both are float32
arithmetic in another summation order: results agree to float32 rounding, never to a lower
precision.

Gradients go through an autograd Function whose backward is two more oneDNN matmuls
(dx = g w^T, dw = x^T g). It is on by default where the CPU has AVX-512 (where MKL's sgemm
leaves the wide registers unused on AMD); `LENSCOPE_ONEDNN=1` or `set_onednn(True)` turns it on
anywhere, `LENSCOPE_ONEDNN=0` or `set_onednn(False)` sends every matmul to torch.

Weights follow the model's convention, `w` [d_in, d_out]; `linear_t` takes a transposed weight
`w_t` [d_out, d_in] (an unembedding stored as [V, d], an SAE encoder stored as [d_sae, d_in]).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _default_on(setting: str | None, capability: str) -> bool:
    """`LENSCOPE_ONEDNN` decides when set ("1"/"true" on, "0"/"false" off); otherwise oneDNN runs
    where the CPU has AVX-512. Measured (`benchmarks/matmul.py`): on an AVX-512 EPYC oneDNN ran the
    model's float32 shapes 1.9-2.8x faster than MKL's sgemm; on an AVX2-only EPYC it ran them at a
    median 0.99x and the large ones at 0.5-0.8x, so there torch's own matmul stays."""
    value = (setting or "").strip().lower()
    if value in ("0", "false", "off"):
        return False
    if value in ("1", "true", "on"):
        return True
    return capability.upper().startswith("AVX512")


_enabled = _AVAILABLE and _default_on(
    os.environ.get("LENSCOPE_ONEDNN"), torch.backends.cpu.get_cpu_capability()
)

# Below this many multiply-adds oneDNN's ~10 us call overhead outweighs its faster inner loop.
MIN_MACS = 1 << 20
# oneDNN runs bfloat16 only on CPUs with bf16 instructions (AVX512-BF16, AMX); on an AVX2-only
# CPU it refuses the primitive, so bfloat16 products go to torch there.
_BF16 = _AVAILABLE and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
_DTYPES = (torch.float32, torch.bfloat16) if _BF16 else (torch.float32,)


def set_onednn(enabled: bool) -> bool:
    """Turn the oneDNN path on or off (on only where torch has it); returns the previous state."""
    global _enabled
    previous = _enabled
    _enabled = _AVAILABLE and enabled
    return previous


def onednn_enabled() -> bool:
    return _enabled


def _transformed() -> bool:
    """Inside torch.func (jvp, vmap, grad, ...) or a forward-AD dual level: oneDNN's kernel has
    no forward-mode or batching rule, so torch's own matmul runs there."""
    return bool(torch._C._are_functorch_transforms_active()) or fwAD._current_level >= 0


def _fast(x: Tensor, w_t: Tensor, b: Tensor | None) -> bool:
    return (
        _enabled
        and x.device.type == "cpu"
        and w_t.device.type == "cpu"
        and x.dtype == w_t.dtype
        and x.dtype in _DTYPES
        and (b is None or b.dtype == x.dtype)
        and x.shape[-1] > 0
        and x.numel() * w_t.shape[0] >= MIN_MACS
        and not _transformed()
    )


def _onednn(x: Tensor, w_t: Tensor, b: Tensor | None) -> Tensor:
    """x [..., i] @ w_t.T + b through oneDNN (w_t [o, i], any strides)."""
    out: Tensor = torch.ops.mkldnn._linear_pointwise(x, w_t, b, "none", [], "")
    return out


def _torch(x: Tensor, w_t: Tensor, b: Tensor | None) -> Tensor:
    if b is not None and x.ndim == 2 and x.dtype == w_t.dtype == b.dtype:
        return torch.addmm(b, x, w_t.t())
    out = x @ w_t.t()
    return out + b if b is not None else out


def _plain(x: Tensor, w_t: Tensor, b: Tensor | None) -> Tensor:
    """No autograd: the fastest kernel for these operands."""
    return _onednn(x, w_t, b) if _fast(x, w_t, b) else _torch(x, w_t, b)


class _Linear(torch.autograd.Function):
    """x @ w_t.T + b with oneDNN forward and backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w_t: Tensor, b: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w_t)
        return _plain(x, w_t, b)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w_t = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = grad.reshape(-1, grad.shape[-1])
        mm = linear_t if torch.is_grad_enabled() else _plain  # create_graph: differentiable
        gx = gw = gb = None
        if need_x:  # g @ w_t: w_t.T [i, o] is the weight in linear's [out, in] form
            gx = mm(g2, w_t.t(), None).reshape(x.shape)
        if need_w:  # g^T x: [o, i]
            gw = mm(g2.t(), x.reshape(-1, x.shape[-1]).t(), None)
        if need_b:
            gb = g2.sum(0)
        return gx, gw, gb


def linear_t(x: Tensor, w_t: Tensor, b: Tensor | None = None) -> Tensor:
    """x [..., d_in] @ w_t.T + b, w_t [d_out, d_in]; differentiable."""
    if not _fast(x, w_t, b):
        return _torch(x, w_t, b)
    grads = x.requires_grad or w_t.requires_grad or (b is not None and b.requires_grad)
    if grads and torch.is_grad_enabled():
        out: Tensor = _Linear.apply(x, w_t, b)
        return out
    return _onednn(x, w_t, b)


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """x [..., d_in] @ w + b, w [d_in, d_out]; differentiable."""
    return linear_t(x, w.t(), b)

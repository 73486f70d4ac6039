"""Devices for the device-parametrised tests, and a CPU probe for tensors made off the model's device.

`DEVICES` is "cpu" always and "cuda" where torch sees a GPU; without one the cuda case is skipped
with its reason. Every cuda case carries the `gpu` mark, so `pytest -m gpu` (`make gpu-check`)
selects exactly the tests that run on a GPU.

`stray_tensors_fail()` is the probe that needs no GPU: inside it, a tensor made without a device
(`torch.zeros(n)`, `torch.tensor(xs)`, `torch.arange(n)`, ...) lands on torch's "meta" device,
which holds no values. Such a tensor that then meets the model's (CPU) tensors, or is read
(`.item()`, `.tolist()`), raises, just as a tensor left on the CPU fails beside a model on CUDA.
Tensors made `like` another (`zeros_like`, `x.new_zeros`, `device=x.device`) follow it and pass.
What it cannot see: a CPU tensor moved explicitly with `.to(device)` (correct on a GPU too) and
`.numpy()` on a tensor that would be on the GPU (that needs a real GPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

NO_CUDA = "no CUDA GPU: torch.cuda.is_available() is False"
HAS_CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)],
    ),
]
# Only the GPU: a test that compares a GPU result with the CPU's (its cpu case would be trivial).
GPU_ONLY = [DEVICES[1]]


@contextmanager
def stray_tensors_fail() -> Iterator[None]:
    """Tensors made without a device go to "meta" in this thread while the block runs."""
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(before)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """`a` (on any device) equals `b` within tolerance, compared on the CPU in float32."""
    return torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), atol=atol, rtol=rtol)

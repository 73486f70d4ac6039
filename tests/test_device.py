"""`resolve_device`: what `--device` and `device=` accept, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from lenscope.device import resolve_device
from lenscope.errors import InputError


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    want = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == want
    assert resolve_device(None) == want


@pytest.mark.parametrize("spec", ["gpu0", "tpu", "cuda:x", ""])
def test_unknown_devices_are_refused_in_one_line(spec: str) -> None:
    with pytest.raises(InputError) as e:
        resolve_device(spec)
    assert "\n" not in str(e.value)


def test_missing_gpu_is_refused() -> None:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InputError, match="CUDA GPU"):
        resolve_device(f"cuda:{n}")

"""`resolve_device`: what `--device` and `device=` accept, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

from lenscope.device import parse_dtype, resolve_device
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


def test_cuda_names_this_ranks_gpu_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from lenscope.device import _local_rank

    monkeypatch.setenv("LOCAL_RANK", "3")
    assert _local_rank() == 3
    monkeypatch.setenv("LOCAL_RANK", "not-a-number")
    assert _local_rank() == 0
    monkeypatch.delenv("LOCAL_RANK")
    assert _local_rank() == 0
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    monkeypatch.setenv("LOCAL_RANK", str(n))  # a rank past the GPUs present
    if n:
        with pytest.raises(InputError, match="CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if n else "cpu")  # cpu: never refused


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("float32", torch.float32),
        ("FP32", torch.float32),
        ("bfloat16", torch.bfloat16),
        ("bf16", torch.bfloat16),
        ("torch.float16", torch.float16),
        ("half", torch.float16),
        ("auto", None),
        (None, None),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_dtype_names(spec: str | torch.dtype | None, want: torch.dtype | None) -> None:
    assert parse_dtype(spec) == want


@pytest.mark.parametrize("spec", ["int8", "float8", "", "fp64x"])
def test_unknown_dtypes_are_refused_in_one_line(spec: str) -> None:
    with pytest.raises(InputError, match="unknown dtype") as e:
        parse_dtype(spec)
    assert "\n" not in str(e.value)


def test_the_onednn_path_is_cpu_only() -> None:
    """linalg's oneDNN kernel takes CPU tensors only: a tensor anywhere else (meta here, CUDA on
    a GPU) goes to torch's own matmul, whatever the setting."""
    from lenscope import linalg

    before = linalg.set_onednn(True)
    try:
        big = (torch.ones(64, 256), torch.ones(256, 256))
        assert linalg._fast(*big, None) == linalg._AVAILABLE
        for dev in ("meta", *(["cuda"] if torch.cuda.is_available() else [])):
            x, w = (t.to(dev) for t in big)
            assert not linalg._fast(x, w, None) and not linalg._fast(big[0], w, None)
    finally:
        linalg.set_onednn(before)


def test_a_server_on_an_absent_gpu_is_refused_before_loading() -> None:
    from lenscope.server import ServerConfig

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InputError, match="CUDA GPU"):
        ServerConfig("no-such-model", device=f"cuda:{n}").check()
    ServerConfig("no-such-model", device="cpu").check()

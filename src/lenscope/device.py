"""Devices: one parser for what a user types after `--device` or passes as `device=`.

`"cpu"`, `"cuda"`, `"cuda:N"` and `"auto"` (the first GPU when one is present, else the CPU) are
accepted everywhere (the CLI, the server, the library). Under `torchrun`, `"cuda"` and `"auto"`
name this process's GPU (`cuda:LOCAL_RANK`), so one command line serves every rank. A GPU that is
absent, or an index past the GPUs present, is refused in one line before any weight is read."""

from __future__ import annotations

import os

import torch

from lenscope.errors import InputError

DEVICE_HELP = "cpu | cuda | cuda:N | auto (the first GPU when one is present, else the CPU)"
DTYPE_HELP = (
    "float32 | bfloat16 | float16 | auto (auto: a checkpoint's own dtype, bf16 weights stay "
    "bf16; lenscope's own models load in float32)"
)
DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """The torch device that `spec` names; `None` and `"auto"` pick CUDA when it is available."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = "auto" if spec is None else spec.strip().lower()
    if s == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        s = "cuda"
    try:
        dev = torch.device(s)
    except RuntimeError:
        raise InputError(f"unknown device {spec!r}: use {DEVICE_HELP}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise InputError(f"device {spec!r} is not supported: use {DEVICE_HELP}")
    if not torch.cuda.is_available():
        raise InputError(f"device {spec!r} asked for, but torch sees no CUDA GPU on this machine")
    index = _local_rank() if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise InputError(
            f"device {spec!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return torch.device("cuda", index)


def parse_dtype(spec: str | torch.dtype | None) -> torch.dtype | None:
    """The dtype `spec` names (float32, bfloat16, float16 and their short forms); `None` and
    `"auto"` mean: keep the checkpoint's own (see `lenscope.model.load_model`)."""
    if spec is None or isinstance(spec, torch.dtype):
        return spec
    s = spec.strip().lower().removeprefix("torch.")
    if s == "auto":
        return None
    if s not in DTYPES:
        raise InputError(f"unknown dtype {spec!r}: use {DTYPE_HELP}")
    return DTYPES[s]


def _local_rank() -> int:
    """This process's rank on its machine under torchrun (`LOCAL_RANK`), else 0."""
    try:
        return max(0, int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        return 0

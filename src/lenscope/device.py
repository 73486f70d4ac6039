"""Devices: one parser for what a user types after `--device` or passes as `device=`.

`"cpu"`, `"cuda"`, `"cuda:N"` and `"auto"` (the first GPU when one is present, else the CPU) are
accepted everywhere (the CLI, the server, the library). A GPU that is absent, or an index past the
GPUs present, is refused in one line before any weight is read."""

from __future__ import annotations

import torch

from lenscope.errors import InputError

DEVICE_HELP = "cpu | cuda | cuda:N | auto (the first GPU when one is present, else the CPU)"


def resolve_device(spec: str | torch.device | None = "cpu") -> torch.device:
    """The torch device that `spec` names; `None` and `"auto"` pick CUDA when it is available."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = "auto" if spec is None else spec.strip().lower()
    if s == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
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
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise InputError(
            f"device {spec!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return torch.device("cuda", index)

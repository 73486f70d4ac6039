"""The shipped held-out tokens (assets/data/stdlib-bpe4096-val.safetensors), as the tests read them."""

from __future__ import annotations

import functools

import torch
from safetensors.torch import load_file

from lenscope.model.load import assets_dir


@functools.cache
def _val() -> torch.Tensor:
    path = assets_dir() / "data" / "stdlib-bpe4096-val.safetensors"
    return load_file(str(path))["tokens"].long()


def val_tokens(n: int, offset: int = 0) -> torch.Tensor:
    """n consecutive held-out tokens of mini's dataset, as a [n] LongTensor."""
    return _val()[offset : offset + n].clone()

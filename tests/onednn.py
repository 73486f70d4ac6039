"""Test helper: count the calls that take `lenscope.linalg`'s oneDNN path."""

from __future__ import annotations

import pytest
import torch

from lenscope import linalg


def count_onednn_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one on every oneDNN matmul until the test ends."""
    seen: list[int] = []
    real = linalg._onednn

    def spy(x: torch.Tensor, w_t: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        seen.append(1)
        return real(x, w_t, b)

    monkeypatch.setattr(linalg, "_onednn", spy)
    return seen

"""Shared fixtures: small deterministic models and threads kept low on the 2-core CI machine."""

from __future__ import annotations

import lenscope  # noqa: F401  before torch: large tensors on huge pages (lenscope.runtime)

# isort: split
import pytest
import torch

torch.set_num_threads(1)  # tiny test models run fastest on one thread
torch.use_deterministic_algorithms(False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: runs on a CUDA GPU (`make gpu-check`); skipped with the reason without one"
    )

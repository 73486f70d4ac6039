"""Shared fixtures: the shipped attn2 (induction) and mini (code tasks), loaded once."""

from __future__ import annotations

import pytest

from lenscope.discover.context import DiscoveryContext
from lenscope.discover.tasks import load_task
from lenscope.model.load import load_model
from lenscope.model.transformer import HookedTransformer


@pytest.fixture(scope="session")
def attn2() -> HookedTransformer:
    return load_model("attn2")


@pytest.fixture(scope="session")
def mini() -> HookedTransformer:
    return load_model("mini")


@pytest.fixture(scope="session")
def induction_ctx(attn2: HookedTransformer) -> DiscoveryContext:
    """attn2's induction task, 12 rows, resample ablation."""
    return DiscoveryContext.build(attn2, load_task("induction", attn2).head(12), "resample")

"""Records of a tiny model to explain (harvested once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lenscope.records import harvest
from tests.records.helpers import small_config, tiny_model, token_dataset


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("explain")
    ds = token_dataset(d / "tokens")
    harvest(
        tiny_model(),
        d / "rec",
        config=small_config(n_tokens=512),
        corpus=[str(ds)],
        progress=False,
        log=lambda _: None,
    )
    return d / "rec"

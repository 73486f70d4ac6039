"""Saved artifacts shared by the records tests: a tiny model, an SAE on it, a token dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from lenscope import save_model
from lenscope.sae import SAEConfig, SparseAutoencoder, save_sae
from tests.records.helpers import tiny_model, token_dataset


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("saved")
    save_model(tiny_model(), d / "model")
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=24, k=4, hook_name="blocks.0.hook_resid_post"))
    save_sae(sae, d / "sae")
    return {"model": d / "model", "sae": d / "sae", "tokens": token_dataset(d / "tokens")}

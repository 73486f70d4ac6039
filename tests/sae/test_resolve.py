"""SAE names: one you trained wins over a shipped SAE of the same name, and the listing says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from lenscope.sae import SparseAutoencoder, list_saes, load_sae, saes_for_model, save_sae
from lenscope.sae.config import SAEConfig
from lenscope.sae.io import resolve_sae_path

HOOK = "blocks.0.hook_resid_post"


def _sae(d_sae: int) -> SparseAutoencoder:
    cfg = SAEConfig(d_in=8, d_sae=d_sae, k=2, hook_name=HOOK, model_fingerprint="f" * 16)
    return SparseAutoencoder(cfg, seed=0)


def test_a_trained_sae_wins_over_the_shipped_one_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets, home = tmp_path / "assets", tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(assets))
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    save_sae(_sae(16), assets / "saes" / "same")
    assert resolve_sae_path("same") == assets / "saes" / "same"
    assert saes_for_model("f" * 16) == [assets / "saes" / "same"]

    save_sae(_sae(32), home / "saes" / "same")
    assert resolve_sae_path("same") == home / "saes" / "same"
    assert load_sae("same").d_sae == 32
    assert load_sae(assets / "saes" / "same").d_sae == 16  # the shipped one loads by path
    assert {(e.source, e.shadowed) for e in list_saes()} == {("shipped", True), ("trained", False)}
    # the SAE picked for a model's hook is the one its name loads
    assert saes_for_model("f" * 16) == [home / "saes" / "same"]

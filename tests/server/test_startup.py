"""What `lenscope serve MODEL` picks up by itself: the model's harvested records and SAEs made on
exactly this model (by fingerprint); `--no-auto`, `--sae` and `--records` override."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lenscope import HookedTransformer, save_model
from lenscope.model import fingerprint
from lenscope.sae import SAEConfig, SparseAutoencoder, save_sae
from lenscope.server import ServerConfig, ServerState
from tests.server.fixtures import SAE_HOOK


def test_serve_finds_the_models_records_and_sae(
    tmp_path: Path, model: HookedTransformer, records_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    save_model(model, home / "models" / "tiny")
    shutil.copytree(records_dir, home / "records" / "tiny")
    fp = fingerprint(model)
    for name, owner in (("other", "0" * 16), ("mine", fp)):
        cfg = SAEConfig(d_in=32, d_sae=8, k=2, hook_name=SAE_HOOK, model_fingerprint=owner)
        save_sae(SparseAutoencoder(cfg), home / "saes" / name)
    bad_hook = SAEConfig(
        d_in=32, d_sae=8, k=2, hook_name="blocks.0.mlp.hook_post", model_fingerprint=fp
    )
    save_sae(SparseAutoencoder(bad_hook), home / "saes" / "not-residual")

    logs: list[str] = []
    st = ServerState.load(ServerConfig("tiny"), logs.append)
    assert [s.name for s in st.saes] == ["mine"] and st.saes[0].hook == SAE_HOOK
    assert st.records is not None and st.fingerprint == fp
    assert any("splicing the SAE" in m for m in logs)
    st.close()

    st = ServerState.load(ServerConfig("tiny", auto=False))
    assert st.saes == [] and st.records is None and "--records" in st.records_note
    st.close()

    st = ServerState.load(ServerConfig("tiny", saes=[str(home / "saes" / "other")]))
    assert [s.name for s in st.saes] == ["other"]
    st.close()


def test_records_of_another_model_are_left_out_with_a_reason(
    tmp_path: Path, records_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.server.fixtures import tiny_model

    home = tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    save_model(tiny_model(tmp_path / "tok", seed=1), home / "models" / "tiny")
    shutil.copytree(records_dir, home / "records" / "tiny")
    logs: list[str] = []
    st = ServerState.load(ServerConfig("tiny"), logs.append)
    assert st.records is None and "another model" in st.records_note
    assert any("not used" in m for m in logs)
    st.close()

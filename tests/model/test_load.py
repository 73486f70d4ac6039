"""Loading: our own artifacts round-trip; bad checkpoints give one clear error, never a KeyError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lenscope import HookedTransformer, ModelConfig, load_model, save_model
from lenscope.errors import CheckpointError, ModelNotFoundError, UnsupportedArchitectureError
from tests.model.hf_fixtures import make_checkpoint


def test_save_load_roundtrip(tmp_path: Path) -> None:
    m = HookedTransformer(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=20, n_ctx=8))
    save_model(m, tmp_path / "m", provenance={"recipe": "test"}, eval={"val_loss": 1.0})
    back = load_model(tmp_path / "m")
    t = torch.randint(0, 20, (1, 8))
    assert torch.equal(m(t), back(t))
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["kind"] == "model" and man["provenance"]["recipe"] == "test"


def test_unknown_name_lists_options() -> None:
    with pytest.raises(ModelNotFoundError, match="lenscope models"):
        load_model("no-such-model-anywhere")


def test_corrupt_safetensors(tmp_path: Path) -> None:
    make_checkpoint("gpt2", tmp_path)
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tmp_path)


def test_unsupported_architecture(tmp_path: Path) -> None:
    make_checkpoint("gpt2", tmp_path)
    c = json.loads((tmp_path / "config.json").read_text())
    c["model_type"] = "t5"
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(UnsupportedArchitectureError, match="'t5' is not supported"):
        load_model(tmp_path)


def test_config_shape_mismatch(tmp_path: Path) -> None:
    make_checkpoint("llama", tmp_path)
    c = json.loads((tmp_path / "config.json").read_text())
    c["intermediate_size"] = 100
    (tmp_path / "config.json").write_text(json.dumps(c))
    with pytest.raises(CheckpointError, match="shape"):
        load_model(tmp_path)


def test_missing_weights_and_config(tmp_path: Path) -> None:
    make_checkpoint("gpt2", tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_model(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_model(tmp_path)


def test_missing_tensor(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    make_checkpoint("gpt2", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    del sd[next(k for k in sd if "ln_f.weight" in k)]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensor"):
        load_model(tmp_path)


def test_hf_cache_by_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    make_checkpoint("gpt2", snap)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = load_model("org/tiny")
    assert m.cfg.architecture == "gpt2"


def _tiny(d_model: int) -> HookedTransformer:
    cfg = ModelConfig(n_layers=1, d_model=d_model, n_heads=2, d_vocab=20, n_ctx=8, name="same")
    return HookedTransformer(cfg)


def test_a_trained_model_wins_over_the_shipped_one_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lenscope.model.load import list_models, resolve_model_path

    assets, home = tmp_path / "assets", tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(assets))
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    save_model(_tiny(16), assets / "models" / "same")
    save_model(_tiny(16), assets / "models" / "only-shipped")
    assert resolve_model_path("same") == assets / "models" / "same"  # nothing trained yet
    assert not any(e.shadowed for e in list_models())

    save_model(_tiny(24), home / "models" / "same")  # `lenscope train` writes here
    assert resolve_model_path("same") == home / "models" / "same"
    assert load_model("same").cfg.d_model == 24
    assert resolve_model_path("only-shipped") == assets / "models" / "only-shipped"
    assert load_model(assets / "models" / "same").cfg.d_model == 16  # still loads by path
    listed = {(e.name, e.source): e.shadowed for e in list_models()}
    assert listed == {
        ("only-shipped", "shipped"): False,
        ("same", "shipped"): True,
        ("same", "trained"): False,
    }

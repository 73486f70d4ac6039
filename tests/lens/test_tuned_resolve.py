"""Tuned lens names: one you trained wins over a shipped lens of the same name."""

from __future__ import annotations

from pathlib import Path

import pytest

from lenscope import HookedTransformer, ModelConfig
from lenscope.lens import TunedLens, load_tuned_lens, save_tuned_lens
from lenscope.lens.tuned import find_tuned_lens, resolve_tuned_path


def _model() -> HookedTransformer:
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=20, n_ctx=8, name="tiny")
    return HookedTransformer(cfg).eval()


def test_a_trained_lens_wins_over_the_shipped_one_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets, home = tmp_path / "assets", tmp_path / "home"
    monkeypatch.setenv("LENSCOPE_ASSETS", str(assets))
    monkeypatch.setenv("LENSCOPE_HOME", str(home))
    m = _model()
    shipped = TunedLens.for_model(m)
    save_tuned_lens(shipped, assets / "lenses" / "tiny-tuned", "tiny-tuned")
    assert resolve_tuned_path("tiny-tuned") == assets / "lenses" / "tiny-tuned"
    assert find_tuned_lens(m) == assets / "lenses" / "tiny-tuned"

    mine = TunedLens.for_model(m)
    mine.bias.data.fill_(0.5)  # tell the two apart by their parameters
    save_tuned_lens(mine, home / "lenses" / "tiny-tuned", "tiny-tuned")
    assert resolve_tuned_path("tiny-tuned") == home / "lenses" / "tiny-tuned"
    assert find_tuned_lens(m) == home / "lenses" / "tiny-tuned"
    assert float(load_tuned_lens("tiny-tuned", m).bias.detach().mean()) == pytest.approx(0.5)
    assert float(load_tuned_lens("auto", m).bias.detach().mean()) == pytest.approx(0.5)
    shipped_again = load_tuned_lens(assets / "lenses" / "tiny-tuned", m)  # still loads by path
    assert float(shipped_again.bias.detach().abs().sum()) == 0.0

"""The tuned lens: identity at init, the translator formula, training, evaluation, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lenscope import save_model
from lenscope.errors import ArtifactError
from lenscope.lens import (
    TunedLens,
    evaluate_lenses,
    load_tuned_lens,
    logit_lens,
    plot_lens_eval,
    save_tuned_lens,
    train_tuned_lens,
)
from lenscope.lens.boundaries import collect_residuals, lens_boundaries
from lenscope.lens.core import lens_logits
from tests.lens.fixtures import manual_norm, manual_unembed, tiny, tokens


def _stream(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """A token stream with structure (next = 3 * prev + small noise mod V)."""
    rng = np.random.default_rng(seed)
    out = [0]
    for _ in range(n - 1):
        out.append((3 * out[-1] + int(rng.integers(0, 4))) % vocab)
    return np.asarray(out, dtype=np.int64)


def _randomised(m) -> TunedLens:  # type: ignore[no-untyped-def]
    lens = TunedLens.for_model(m)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        lens.weight.copy_(torch.randn(lens.weight.shape, generator=g) * 0.2)
        lens.bias.copy_(torch.randn(lens.bias.shape, generator=g))
    return lens


def test_untrained_tuned_lens_is_the_logit_lens_exactly() -> None:
    m = tiny("gpt2", scale=3.0)
    toks = tokens(m.cfg.d_vocab)
    a = logit_lens(m, toks, watch=["5"])
    b = logit_lens(m, toks, watch=["5"], tuned=TunedLens.for_model(m))
    assert b.lens == "tuned"
    for field in ("top_ids", "top_probs", "entropy", "kl", "next_rank", "next_prob"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_translators_apply_x_plus_xW_plus_b_before_the_final_norm() -> None:
    m = tiny("modern", scale=2.0)
    toks = tokens(m.cfg.d_vocab)
    lens = _randomised(m)
    _, got = lens_logits(m, toks, tuned=lens)
    bounds = lens_boundaries(m.cfg)
    resids = collect_residuals(m, toks, bounds)
    for i, (b, r) in enumerate(zip(bounds, resids, strict=True)):
        x = r.double()
        if b.blocks < m.cfg.n_layers:
            x = x + x @ lens.weight[b.blocks].double() + lens.bias[b.blocks].double()
        ref = manual_unembed(m, manual_norm(m, x))
        assert (got[i].double() - ref).abs().max() < 1e-4, b.label
    with torch.no_grad():
        assert torch.equal(got[-1], m(toks))  # the last boundary is still the model's output


def test_training_beats_the_logit_lens_in_kl_at_every_layer_but_the_last(tmp_path: Path) -> None:
    m = tiny("gpt2", scale=3.0)
    stream = _stream(m.cfg.d_vocab, 12_000)
    seen: list[tuple[int, float]] = []
    lens, info = train_tuned_lens(
        m,
        stream[:10_000],
        steps=60,
        batch_size=8,
        ctx=16,
        lr=1e-2,
        progress=lambda s, loss: seen.append((s, loss)),
    )
    assert [s for s, _ in seen] == list(range(1, 61))
    assert info.tokens == 60 * 8 * 16 and len(info.final_kl) == m.cfg.n_layers
    assert np.mean(info.losses[-5:]) < 0.5 * np.mean(info.losses[:5])
    assert all(p.grad is None for p in m.parameters())  # the model stayed frozen
    ev = evaluate_lenses(m, stream[10_000:], lens, ctx=16, max_batches=8)
    assert ev.tuned is not None
    assert ev.tuned_beats_logit() == [True] * m.cfg.n_layers
    assert ev.tuned.kl[-1] == ev.logit.kl[-1] == 0.0
    files = plot_lens_eval(ev, tmp_path)
    assert [f.suffix for f in files] == [".png", ".svg"] and all(f.stat().st_size for f in files)


def test_evaluation_equals_brute_force_means() -> None:
    m = tiny("parallel", scale=2.0)
    stream = _stream(m.cfg.d_vocab, 3 * 2 * 12 + 5, seed=1)
    lens = _randomised(m)
    ev = evaluate_lenses(m, stream, lens, batch_size=2, ctx=12, max_batches=3)
    batch = torch.from_numpy(stream[: 6 * 12].reshape(6, 12))
    assert ev.tokens == batch.numel()
    for got, tuned in ((ev.logit, None), (ev.tuned, lens)):
        assert got is not None
        _, logits = lens_logits(m, batch, tuned=tuned)
        logp = logits.double().log_softmax(-1)
        p = logp.exp()
        ce = -logp[:, :, :-1].gather(-1, batch[None, :, 1:, None].expand(len(logp), -1, -1, 1))
        assert np.allclose(got.ce, ce.mean((1, 2, 3)).tolist(), atol=1e-5)
        assert np.allclose(got.entropy, (-(p * logp).sum(-1)).mean((1, 2)).tolist(), atol=1e-5)
        kl = (p[-1] * (logp[-1] - logp)).sum(-1).mean((1, 2))
        assert np.allclose(got.kl, kl.tolist(), atol=1e-5)


def test_artifact_round_trip_and_clear_failures(tmp_path: Path) -> None:
    m = tiny("gpt2")
    lens = _randomised(m)
    path = save_tuned_lens(lens, tmp_path / "lens", m.cfg.name, provenance={"steps": 3})
    man = json.loads((path / "manifest.json").read_text())
    assert man["kind"] == "tuned_lens" and man["provenance"]["steps"] == 3
    back = load_tuned_lens(path, m)
    assert torch.equal(back.weight, lens.weight) and torch.equal(back.bias, lens.bias)

    other = tiny("gpt2", seed=5)
    with pytest.raises(ArtifactError, match="another model"):
        load_tuned_lens(path, other)
    with pytest.raises(ArtifactError, match="3 layers of width 32"):
        load_tuned_lens(path, tiny("gpt2", n_layers=2))
    save_model(m, tmp_path / "model")
    with pytest.raises(ArtifactError, match="'model' artifact, not a 'tuned_lens'"):
        load_tuned_lens(tmp_path / "model")
    man["data"]["n_layers"] = 4
    (path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="weight has shape"):
        load_tuned_lens(path)
    (path / "translators.safetensors").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="not a readable safetensors"):
        load_tuned_lens(path)

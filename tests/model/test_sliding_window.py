"""Sliding-window attention (Mistral, Qwen2) against `transformers`' eager forward: prompts
shorter and longer than the window, the KV cache, the explicit-softmax path and padding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope import HookedTransformer, ModelConfig, load_model, save_model
from lenscope.errors import CheckpointError
from lenscope.model import KVCache
from tests.model.hf_fixtures import VOCAB, WINDOW, make_checkpoint

Pair = tuple[Any, HookedTransformer]


@pytest.fixture(scope="module", params=["mistral-sliding", "qwen2-sliding"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    d = tmp_path_factory.mktemp(request.param)
    hf = make_checkpoint(request.param, d)
    assert hf.config._attn_implementation == "eager"
    return hf, load_model(d)


def _tokens(n: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def test_the_window_is_read_from_the_config(pair: Pair) -> None:
    _, ours = pair
    assert ours.cfg.sliding_window == WINDOW
    expected = None if ours.cfg.architecture == "mistral" else [1, 2]  # max_window_layers=1
    assert ours.cfg.sliding_layers == expected


@pytest.mark.parametrize("n", [3, WINDOW, WINDOW + 1, 20])
def test_logits_match_shorter_and_longer_than_the_window(pair: Pair, n: int) -> None:
    hf, ours = pair
    t = _tokens(n)
    with torch.no_grad():
        ref, got = hf(t).logits, ours(t)
    assert (ref - got).abs().max().item() <= 1e-4


def test_decoding_with_the_cache_matches_transformers(pair: Pair) -> None:
    hf, ours = pair
    t = _tokens(20, seed=2)
    cache = KVCache.empty(ours.cfg.n_layers)
    outs, at = [], 0
    with torch.no_grad():
        ref = hf(t).logits
        for n in (4, 1, WINDOW + 2, 1, 6):
            outs.append(ours(t[:, at : at + n], kv_cache=cache))
            at += n
    assert at == 20
    assert (ref - torch.cat(outs, 1)).abs().max().item() <= 1e-4


def test_patterns_are_banded_like_transformers_attentions(pair: Pair) -> None:
    hf, ours = pair
    t = _tokens(14, seed=3)
    with torch.no_grad():
        ref = hf(t, output_attentions=True)
        logits, cache = ours.run_with_cache(t, names_filter=lambda n: n.endswith("hook_pattern"))
    assert (ref.logits - logits).abs().max().item() <= 1e-4  # the explicit softmax path
    q = torch.arange(14)[:, None]
    outside = q - torch.arange(14)[None, :] >= WINDOW  # keys too far back for a window
    for layer in range(ours.cfg.n_layers):
        pattern = cache["pattern", layer]
        assert (ref.attentions[layer] - pattern).abs().max().item() <= 1e-5, layer
        far = pattern[..., outside]
        if ours.cfg.window(layer):
            assert bool((far == 0).all()), layer
        else:  # Qwen2's layer 0 attends to everything
            assert bool((far > 0).all()), layer


def test_left_padded_batch_matches_transformers(pair: Pair) -> None:
    hf, ours = pair
    t = _tokens(16, seed=4)
    mask = torch.ones_like(t)
    mask[1, :5] = 0  # row 1: 11 real tokens after 5 of padding
    t[1, :5] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ref = hf(t, attention_mask=mask, position_ids=positions).logits
        got = ours(t, attention_mask=mask)
    real = mask.bool()
    assert (ref[real] - got[real]).abs().max().item() <= 1e-4


def test_greedy_generation_past_the_window_matches_recomputing_with_transformers(
    pair: Pair,
) -> None:
    hf, ours = pair
    prompt = _tokens(3, batch=1, seed=5)
    got = ours.generate(prompt, max_new_tokens=3 * WINDOW)
    assert isinstance(got, torch.Tensor)
    seq = prompt
    with torch.no_grad():
        for _ in range(3 * WINDOW):  # transformers' whole forward at every step, no cache
            seq = torch.cat([seq, hf(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert got.tolist() == seq.tolist()


def _edit(d: Path, **changes: Any) -> None:
    c = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    (d / "config.json").write_text(json.dumps(c))


def test_config_variants(tmp_path: Path) -> None:
    make_checkpoint("qwen2-sliding", tmp_path)
    _edit(tmp_path, layer_types=None)  # configs older than layer_types: max_window_layers
    assert load_model(tmp_path).cfg.sliding_layers == [1, 2]
    _edit(tmp_path, use_sliding_window=False)  # transformers then ignores the window
    assert load_model(tmp_path).cfg.sliding_window == 0
    _edit(tmp_path, use_sliding_window=True, max_window_layers=3)  # no layer slides
    assert load_model(tmp_path).cfg.sliding_window == 0
    _edit(tmp_path, max_window_layers=None)  # absent: transformers' default 28, past 3 layers
    assert load_model(tmp_path).cfg.sliding_window == 0
    _edit(tmp_path, max_window_layers=1, sliding_window=64)  # the window spans the context
    assert load_model(tmp_path).cfg.sliding_window == 0
    _edit(tmp_path, sliding_window=-2)
    with pytest.raises(CheckpointError, match="sliding_window must be a positive integer"):
        load_model(tmp_path)


def test_a_windowed_config_round_trips_and_others_are_unchanged(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(n_layers=2, d_model=16, n_heads=2, d_vocab=20, n_ctx=12)
    plain = ModelConfig(**kw)
    assert "sliding_window" not in plain.to_dict()  # old manifests and fingerprints stay as is
    m = HookedTransformer(ModelConfig(**kw, sliding_window=3, sliding_layers=[1]))
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.cfg == m.cfg and back.cfg.window(0) == 0 and back.cfg.window(1) == 3
    t = torch.randint(0, 20, (1, 12))
    with torch.no_grad():
        assert torch.equal(back(t), m(t))
        assert not torch.allclose(back(t), HookedTransformer(plain)(t))
    with pytest.raises(CheckpointError, match="sliding_layers"):
        ModelConfig(**kw, sliding_window=3, sliding_layers=[2])

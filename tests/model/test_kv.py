"""The key/value cache: decoding in chunks equals one full forward pass, for every family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenscope import HookedTransformer, ModelConfig, load_model
from lenscope.errors import InputError
from lenscope.model import KVCache
from tests.model.hf_fixtures import VOCAB, make_checkpoint

FAMILIES = [
    "gpt2",
    "neox",
    "neox-serial",
    "llama",
    "mistral",
    "qwen2",
    "mistral-sliding",
    "qwen2-sliding",
]


def _chunked(model: HookedTransformer, tokens: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    cache = KVCache.empty(model.cfg.n_layers)
    outs, at = [], 0
    for n in sizes:
        outs.append(model(tokens[:, at : at + n], kv_cache=cache))
        at += n
    assert cache.length == tokens.shape[1]
    return torch.cat(outs, 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_chunked_decoding_equals_the_full_forward(family: str, tmp_path: Path) -> None:
    make_checkpoint(family, tmp_path)
    model = load_model(tmp_path)
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = model(tokens)
        got = _chunked(model, tokens, [5, 1, 1, 3, 2])
    assert (full - got).abs().max().item() <= 1e-4


def test_attention_only_model_and_hooks_see_the_new_positions() -> None:
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=4, d_vocab=50, n_ctx=16, attn_only=True, name="ao"
    )
    model = HookedTransformer(cfg).eval()
    tokens = torch.randint(0, 50, (1, 10), generator=torch.Generator().manual_seed(8))
    seen: list[tuple[int, ...]] = []
    with torch.no_grad():
        full = model(tokens)
        with model.hooks(fwd=[("blocks.1.attn.hook_pattern", lambda x, h: seen.append(x.shape))]):
            got = _chunked(model, tokens, [4, 6])
    assert (full - got).abs().max().item() <= 1e-5
    assert seen == [(1, 4, 4, 4), (1, 4, 6, 10)]  # new queries over every cached key


def test_generate_with_the_cache_equals_recomputing() -> None:
    model = load_model("mini")
    prompt = model.to_tokens("def add(a, b):\n    return")
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=24)
        with model.hooks(fwd=[("blocks.0.hook_resid_pre", lambda x, h: x)]):  # forces recompute
            recomputed = model.generate(prompt, max_new_tokens=24)
    assert isinstance(cached, torch.Tensor) and isinstance(recomputed, torch.Tensor)
    assert cached.tolist() == recomputed.tolist()


def test_bad_cache_use_is_a_clear_error() -> None:
    cfg = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_vocab=20, n_ctx=8, name="t")
    model = HookedTransformer(cfg).eval()
    toks = torch.zeros(1, 4, dtype=torch.long)
    with torch.no_grad():
        with pytest.raises(InputError, match="attention_mask"):
            model(toks, kv_cache=KVCache.empty(1), attention_mask=torch.ones(1, 4))
        with pytest.raises(InputError, match="no attention_mask or stop"):
            model(toks, kv_cache=KVCache.empty(1), stop_at_layer=0)
        with pytest.raises(InputError, match="3 layers but t has 1"):
            model(toks, kv_cache=KVCache.empty(3))
        cache = KVCache.empty(1)
        model(toks, kv_cache=cache)
        with pytest.raises(InputError, match="exceed the context of 8"):
            model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
        with pytest.raises(InputError, match="batch of 1, not 2"):
            model(torch.zeros(2, 1, dtype=torch.long), kv_cache=cache)

"""The hooked Transformer: hook points, caches, fast vs hooked paths, and bad input."""

from __future__ import annotations

import pytest
import torch

from lenscope import HookedTransformer, ModelConfig
from lenscope.errors import InputError

CONFIGS = {
    "gpt2": ModelConfig(n_layers=2, d_model=32, n_heads=4, d_vocab=50, n_ctx=16),
    "attn_only_noln": ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_vocab=50,
        n_ctx=16,
        attn_only=True,
        normalization="none",
        final_norm=False,
    ),
    "modern": ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        n_kv_heads=2,
        d_vocab=50,
        n_ctx=16,
        d_mlp=48,
        gated_mlp=True,
        act_fn="silu",
        normalization="RMS",
        positional="rotary",
        rotary_dim=4,
        attn_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
    ),
    "parallel": ModelConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_vocab=50,
        n_ctx=16,
        positional="rotary",
        parallel_attn_mlp=True,
        act_fn="gelu",
    ),
}


@pytest.fixture(params=list(CONFIGS))
def model(request: pytest.FixtureRequest) -> HookedTransformer:
    m = HookedTransformer(CONFIGS[request.param])
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def tokens(b: int = 2, p: int = 10) -> torch.Tensor:
    return torch.randint(0, 50, (b, p), generator=torch.Generator().manual_seed(0))


def test_hooked_path_equals_fast_path(model: HookedTransformer) -> None:
    t = tokens()
    fast = model(t)
    logits, cache = model.run_with_cache(t)
    assert (fast - logits).abs().max().item() < 1e-5
    assert "blocks.1.attn.hook_pattern" in cache
    pat = cache["blocks.1.attn.hook_pattern"]
    assert pat.shape == (2, 4, 10, 10)
    assert torch.allclose(pat.sum(-1), torch.ones(2, 4, 10))
    assert torch.all(pat.triu(1) == 0)


def test_cache_reconstructs_residual_stream(model: HookedTransformer) -> None:
    """resid_post = resid_pre + attn_out + mlp_out, and attn_out = z @ W_O + b_O (algebra)."""
    _, c = model.run_with_cache(tokens())
    for layer in range(model.cfg.n_layers):
        total = c["resid_pre", layer] + c["attn_out", layer]
        if not model.cfg.attn_only:
            total = total + c["mlp_out", layer]
        assert torch.allclose(total, c["resid_post", layer], atol=1e-5)
        z = c["z", layer]
        out = torch.einsum("bphd,hdm->bpm", z, model.W_O[layer]) + model.b_O[layer]
        assert torch.allclose(out, c["attn_out", layer], atol=1e-5)


def test_weight_views_match_qkv(model: HookedTransformer) -> None:
    _, c = model.run_with_cache(tokens())
    x = model.blocks[0].ln1(c["resid_pre", 0])
    q = torch.einsum("bpm,hmd->bphd", x, model.W_Q[0]) + model.b_Q[0]
    assert torch.allclose(q, c["q", 0], atol=1e-5)
    k = torch.einsum("bpm,hmd->bphd", x, model.W_K[0]) + model.b_K[0]
    g = model.cfg.n_heads // model.cfg.n_kv_heads
    assert torch.allclose(k, c["k", 0].repeat_interleave(g, dim=2), atol=1e-5)
    assert model.W_Q.shape == (2, 4, 32, 8)
    assert model.W_O.shape == (2, 4, 8, 32)


def test_forward_hook_replaces_activation(model: HookedTransformer) -> None:
    t = tokens()
    clean = model(t)

    def zero(x: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(x)

    with model.hooks(fwd=[("blocks.1.hook_resid_post", zero)]):
        out = model(t)
    bias = model.b_U if model.b_U is not None else 0.0
    expect = model.unembed_resid(model.ln_final(torch.zeros(2, 10, 32))) + 0 * bias
    assert torch.allclose(out, expect, atol=1e-5)
    assert torch.allclose(model(t), clean)  # hooks are gone after the block


def test_backward_hook_sees_gradient(model: HookedTransformer) -> None:
    t = tokens()
    grads: dict[str, torch.Tensor] = {}
    saved: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, hook: object) -> torch.Tensor:
        x.retain_grad()
        saved["x"] = x
        return x

    def bwd(g: torch.Tensor, hook: object) -> None:
        grads["g"] = g

    name = "blocks.0.hook_resid_post"
    with model.hooks(fwd=[(name, keep)], bwd=[(name, bwd)]):
        model(t)[:, -1, 3].sum().backward()
    assert torch.allclose(grads["g"], saved["x"].grad)


def test_glob_and_filter_names(model: HookedTransformer) -> None:
    _, c = model.run_with_cache(tokens(), names_filter="blocks.*.hook_resid_post")
    assert sorted(c.keys()) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    _, c = model.run_with_cache(tokens(), names_filter=lambda n: n.endswith("hook_z"))
    assert len(c) == 2


def test_bad_input(model: HookedTransformer) -> None:
    with pytest.raises(InputError, match="at most 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(InputError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(InputError, match="token ids"):
        model(torch.full((1, 3), 50))
    with (
        pytest.raises(InputError, match="no hook point"),
        model.hooks(fwd=[("blocks.9.hook_nope", lambda x, h: None)]),
    ):
        pass
    with pytest.raises(InputError, match="no tokenizer"):
        model.to_tokens("hello")
    with pytest.raises(InputError, match="exceed"):
        model.generate(torch.zeros(1, 10, dtype=torch.long), max_new_tokens=10)


def test_stop_at_layer(model: HookedTransformer) -> None:
    t = tokens()
    _, c = model.run_with_cache(t)
    assert torch.allclose(model(t, stop_at_layer=1), c["resid_pre", 1], atol=1e-6)


def test_cache_keys_out_of_range_name_the_layer_count(model: HookedTransformer) -> None:
    _, c = model.run_with_cache(tokens())
    n = model.cfg.n_layers
    hooks = dict(model.blocks.named_modules())  # the pattern hook of every block, by position
    for layer in range(-n, n):
        want = hooks[f"{layer % n}.attn.hook_pattern"].name
        assert torch.equal(c["pattern", layer], c[want])
    for key in (("pattern", 9), ("pattern", n), ("pattern", -n - 1), f"blocks.{n}.hook_resid_pre"):
        with pytest.raises(InputError, match=f"out of range: the model has {n} layers"):
            c[key]
        assert key not in c
    for bad in (("pattern",), ("pattern", 1.0), ("pattern", True), 3):
        with pytest.raises(InputError, match=r"a cache key is a hook name or \(kind, layer\)"):
            c[bad]  # type: ignore[index]
    _, narrow = model.run_with_cache(tokens(), names_filter="blocks.0.hook_resid_pre")
    with pytest.raises(InputError, match="widen names_filter"):
        narrow["pattern", 1]  # in range, just not kept

"""Path expansion: the terms sum to the logits, and each head's paths equal what ablating it
changes in a forward pass with patterns and norm scales frozen (the model's own hooks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from lenscope import HookedTransformer
from lenscope.circuits.paths import path_expansion
from lenscope.errors import InputError
from tests.circuits.models import random_model

Hook = tuple[str, Callable[..., torch.Tensor]]


def frozen_hooks(model: HookedTransformer, tokens: torch.Tensor) -> list[Hook]:
    """Hooks that replace every pattern and norm scale with its value in the clean run."""
    _, cache = model.run_with_cache(
        tokens, names_filter=lambda n: n.endswith(("hook_pattern", "hook_scale"))
    )
    hooks: list[Hook] = []
    for name in cache:
        saved = cache[name]
        hooks.append((name, lambda x, hook, saved=saved: saved.clone()))
    return hooks


def tokens_for(model: HookedTransformer, n: int = 12, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.cfg.d_vocab, (n,), generator=g)


@pytest.mark.parametrize("norm", ["LN", "RMS", "none"])
@pytest.mark.parametrize("n_layers", [0, 1, 2])
def test_terms_sum_to_the_logits(norm: str, n_layers: int) -> None:
    model = random_model(n_layers, norm, seed=n_layers)
    toks = tokens_for(model)
    pe = path_expansion(model, toks)
    n_heads = model.cfg.n_heads
    expected = 2 + n_layers * n_heads + (n_heads * n_heads if n_layers == 2 else 0)
    assert len(pe.names) == expected and pe.terms.shape[0] == expected
    logits = model(toks[None])[0].double()
    assert (pe.total - logits).abs().max() < 1e-4
    assert pe.max_abs_error < 1e-4
    if n_layers == 2:
        assert "L0.H1>L1.H2" in pe.names and "L1.H2" in pe.names


@pytest.mark.parametrize("norm", ["LN", "none"])
def test_first_layer_head_paths_equal_ablating_it(norm: str) -> None:
    model = random_model(2, norm, seed=7)
    toks = tokens_for(model)[None]
    pe = path_expansion(model, toks)
    frozen = frozen_hooks(model, toks)
    clean = model.run_with_hooks(toks, fwd_hooks=frozen)[0].double()
    for h in range(model.cfg.n_heads):

        def zero_head(z: torch.Tensor, hook: object, h: int = h) -> torch.Tensor:
            z = z.clone()
            z[:, :, h] = 0.0
            return z

        ablated = model.run_with_hooks(
            toks, fwd_hooks=[*frozen, ("blocks.0.attn.hook_z", zero_head)]
        )[0].double()
        paths = pe.term(f"L0.H{h}") + sum(
            pe.term(f"L0.H{h}>L1.H{j}") for j in range(model.cfg.n_heads)
        )
        assert (clean - ablated - paths).abs().max() < 1e-4


def test_virtual_head_terms_equal_removing_a_head_from_layer_one_input_only() -> None:
    model = random_model(2, "LN", seed=11)
    toks = tokens_for(model)[None]
    pe = path_expansion(model, toks)
    frozen = frozen_hooks(model, toks)
    _, cache = model.run_with_cache(toks, names_filter="blocks.0.attn.hook_z")
    clean = model.run_with_hooks(toks, fwd_hooks=frozen)[0].double()
    for h in range(model.cfg.n_heads):
        out_h = cache["blocks.0.attn.hook_z"][0, :, h] @ model.W_O[0, h]

        def remove(x: torch.Tensor, hook: object, out_h: torch.Tensor = out_h) -> torch.Tensor:
            return x - out_h

        def restore(x: torch.Tensor, hook: object, out_h: torch.Tensor = out_h) -> torch.Tensor:
            return x + out_h

        # layer 1 reads the residual without head h; the final residual still holds it
        hooked = model.run_with_hooks(
            toks,
            fwd_hooks=[
                *frozen,
                ("blocks.1.hook_resid_pre", remove),
                ("blocks.1.hook_resid_post", restore),
            ],
        )[0].double()
        virtual = sum(pe.term(f"L0.H{h}>L1.H{j}") for j in range(model.cfg.n_heads))
        assert (clean - hooked - virtual).abs().max() < 1e-4


def test_contributions_json_and_errors() -> None:
    model = random_model(1, "LN")
    toks = tokens_for(model, 6)
    pe = path_expansion(model, toks)
    c = pe.contributions(-1, 4)
    assert sum(c.values()) == pytest.approx(float(pe.logits[-1, 4]), abs=1e-4)
    j = pe.to_json()
    assert len(j["next_token_logit"]["direct"]) == 5 and j["max_abs_error"] < 1e-4
    with pytest.raises(InputError, match="no path"):
        pe.term("L3.H0")
    with pytest.raises(InputError, match="MLPs"):
        path_expansion(random_model(1, "LN", attn_only=False), toks)
    with pytest.raises(InputError, match="at most 2 layers"):
        path_expansion(random_model(3, "LN"), toks)
    with pytest.raises(InputError, match="one prompt"):
        path_expansion(model, torch.stack([toks, toks]))

"""The Markov chain of a lenscope model runs on a private view: a user's hook on the model is not
seen, the model's train/eval mode is never touched, nothing is left on the model."""

from __future__ import annotations

import torch

from lenscope import HookedTransformer, ModelConfig
from lenscope.markov import transition_matrix
from lenscope.model.hooks import HookPoint
from tests.model.isolation import assert_same, clean, spoiled


def baby(seed: int = 0) -> HookedTransformer:
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=4, d_vocab=2, n_ctx=3, d_mlp=64)
    torch.manual_seed(seed)
    return HookedTransformer(cfg)


def test_chain_does_not_see_the_users_hooks_or_touch_the_mode() -> None:
    model, fresh = baby(), baby()
    want = transition_matrix(fresh, 2, 3, include_short=True)
    model.train()
    modes: list[bool] = []

    def watch_mode(x: torch.Tensor, hook: HookPoint) -> None:
        modes.append(model.training)

    with spoiled(model):
        states = torch.tensor([[0, 1, 1], [1, 1, 0]])
        assert not torch.equal(model(states), fresh(states))  # the hook changes the output
        model.add_hook("hook_embed", watch_mode)
        got = transition_matrix(model, 2, 3, include_short=True)
    assert model.training  # left in train mode, as the user had it
    assert modes == []  # the user's hooks never ran
    assert_same(got.to_json(), want.to_json())
    assert_same(got.next_token_probs, want.next_token_probs)
    assert clean(model)

"""Private views share the model's weights but not its hook points, in both directions; `isolated`
entry points run on one; nothing is ever left attached to the model or to a pooled view."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope import HookedTransformer, ModelConfig
from lenscope.model.hooks import HookPoint
from lenscope.model.view import isolated, origin, private_view
from tests.model.isolation import clean, spoiled, while_hooking, zero


def small(seed: int = 0) -> HookedTransformer:
    cfg = ModelConfig(n_layers=2, d_model=16, n_heads=2, d_vocab=23, n_ctx=12, d_mlp=32)
    torch.manual_seed(seed)
    return HookedTransformer(cfg).eval()


TOKS = torch.tensor([[1, 5, 7, 2, 9, 3, 5, 7]])


def test_view_shares_weights_and_not_the_models_hooks() -> None:
    model, fresh = small(), small()
    seen: list[int] = []
    handle = model.ln_final.register_forward_hook(lambda *_: seen.append(1))
    with spoiled(model):
        spoilt = model(TOKS)
        assert not torch.equal(spoilt, fresh(TOKS))  # the user's hook changes the output
        with private_view(model) as view:
            assert view is not model and origin(view) is model
            assert all(a is b for a, b in zip(view.parameters(), model.parameters(), strict=True))
            assert clean(view)
            assert torch.equal(view(TOKS), fresh(TOKS))
        assert torch.equal(model(TOKS), spoilt)  # the user's hook is still on the model
    handle.remove()
    assert clean(model)


class _Probe:
    """A hook owned by an object that cannot be deep-copied (a lock, a non-leaf tensor)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.grad_tensor = torch.ones(2, requires_grad=True) * 2
        self.calls = 0

    def hook(self, x: Tensor, hook: HookPoint) -> None:
        with self.lock:
            self.calls += 1


def test_a_view_is_made_whatever_hooks_the_model_holds() -> None:
    model = small()
    probe = _Probe()
    model.add_hook("hook_embed", probe.hook)
    model.add_hook("blocks.0.hook_resid_post", probe.hook, dir="bwd")
    with private_view(model) as view:
        view(TOKS)
    assert probe.calls == 0  # the view never ran the model's hook
    model(TOKS)
    assert probe.calls == 1
    model.reset_hooks()


def test_view_of_a_view_is_a_view_of_the_model() -> None:
    model = small()
    with private_view(model) as outer:
        outer.add_hook("blocks.*.attn.hook_z", zero)
        with private_view(outer) as inner:
            assert inner is not outer and origin(inner) is model
            assert inner.W_E is model.W_E
            assert clean(inner)  # the outer view's hook is not seen
            assert torch.equal(inner(TOKS), model(TOKS))
    assert clean(model)


def test_views_come_back_clean() -> None:
    model = small()
    want = model(TOKS)
    for _ in range(3):  # the pool hands the same view out again
        with private_view(model) as view:
            assert clean(view)
            assert torch.equal(view(TOKS), want)
            view.add_hook("blocks.*.attn.hook_z", zero)
            view.ln_final.register_forward_pre_hook(lambda m, a: (a[0] * 0,))
            assert not clean(view)
        assert clean(model)


def test_weight_changes_are_seen_by_views() -> None:
    model = small()
    with private_view(model):
        pass
    with torch.no_grad():
        model.W_E[3] += 1.0  # in place
        with private_view(model) as view:
            assert torch.equal(view(TOKS), model(TOKS))
        mlp: Any = model.blocks[0].mlp
        mlp.W_in = torch.nn.Parameter(mlp.W_in * 2)  # replaced
        with private_view(model) as view:
            mine: Any = view.blocks[0].mlp
            assert mine is not mlp and mine.W_in is mlp.W_in
            assert torch.equal(view(TOKS), model(TOKS))


@isolated
def _runs_on(model: HookedTransformer, tag: str) -> tuple[HookedTransformer, Tensor, str]:
    """A stand-in entry point."""
    model.add_hook("hook_embed", zero)  # an instrument's own hooks stay on its view
    return model, model(TOKS), tag


def test_isolated_entry_points_run_on_a_view() -> None:
    model, fresh = small(), small()
    with spoiled(model):
        ran_on, out, tag = _runs_on(model, tag="x")
    assert ran_on is not model and origin(ran_on) is model and tag == "x"
    with fresh.hooks(fwd=[("hook_embed", zero)]):
        assert torch.equal(out, fresh(TOKS))
    assert clean(model)
    assert _runs_on.__name__ == "_runs_on" and _runs_on.__doc__ == "A stand-in entry point."

    class Duck:
        def add_hook(self, *_: Any) -> None:
            pass

        def __call__(self, t: Tensor) -> Tensor:
            return t

    duck: Any = Duck()
    assert _runs_on(duck, "y")[0] is duck  # not a lenscope model: run as given


def test_threads_hooking_views_while_the_model_is_hooked() -> None:
    model = small()
    fresh = small()
    expected = {}
    for i in range(4):
        name = f"blocks.{i % 2}.attn.hook_z"
        expected[i] = fresh.run_with_hooks(TOKS, fwd_hooks=[(name, zero)]) * (i + 1)
    results: dict[int, list[Tensor]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(20):
            with private_view(model) as view:
                name = f"blocks.{i % 2}.attn.hook_z"
                results[i].append(view.run_with_hooks(TOKS, fwd_hooks=[(name, zero)]) * (i + 1))

    assert not while_hooking(model, work, "blocks.*.hook_resid_pre")
    for i in range(4):
        assert len(results[i]) == 20
        for r in results[i]:
            assert torch.equal(r, expected[i])
    assert clean(model)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_view_follows_the_models_mode(mode: str) -> None:
    model = small()
    getattr(model, mode)()
    with private_view(model) as view:
        assert view.training == model.training

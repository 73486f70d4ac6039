"""Interventions that overflow the model's dtype are one clear `InputError` from every debugger
question, never a result full of NaN; just below the overflow the result is the plain forward's."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lenscope import HookedTransformer
from lenscope.attribution.api import Debugger
from lenscope.attribution.compare import Side
from lenscope.attribution.questions import AttentionScore, LogitDiff
from lenscope.errors import InputError
from lenscope.interventions.spec import InterventionSet, Steer
from tests.attribution.factory import logit_diff, logits_with, prompt, random_model

HOOK = "blocks.0.hook_resid_post"
Q = LogitDiff(target=[3], distractor=[5])
OVERFLOW = r"interventions made the model's output non-finite \(inf/NaN\); use a smaller steering"


def steer(c: float, hook: str = HOOK, n: int = 32) -> InterventionSet:
    return InterventionSet.of(Steer(hook=hook, vector=[1.0] * n, coefficient=c))


def adds(c: float) -> Any:
    def fn(x: torch.Tensor, hook: Any) -> torch.Tensor:
        return x + c

    return fn


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return random_model("gpt2")


def test_an_overflowing_steer_is_refused_and_a_large_one_is_exact(model: HookedTransformer) -> None:
    dbg, ids = Debugger(model), prompt()
    # independently: the same addition in a plain hooked forward does overflow float32
    assert not torch.isfinite(logits_with(model, ids, [(HOOK, adds(1e30))])).all()
    with pytest.raises(InputError, match=OVERFLOW):
        dbg.why(ids, Q, steer(1e30))
    big = logits_with(model, ids, [(HOOK, adds(1e4))])
    assert torch.isfinite(big).all()
    res = dbg.why(ids, Q, steer(1e4), measure=0)
    assert res.value == pytest.approx(logit_diff(big, 3, 5), abs=1e-4)
    assert all(c.logit is not None and c.prob is not None for c in res.candidates)


def test_every_question_refuses_an_overflow(model: HookedTransformer) -> None:
    dbg, ids = Debugger(model), prompt()
    huge = steer(1e30)
    with pytest.raises(InputError, match=OVERFLOW):
        dbg.why_batch([ids, prompt(seed=2)], Q, huge)
    with pytest.raises(InputError, match=OVERFLOW):
        dbg.compare(Q, Side(prompt=ids), Side(prompt=ids, interventions=huge))
    with pytest.raises(InputError, match=OVERFLOW):
        dbg.trace(ids, Q, ["L1.H0"], interventions=huge)
    with pytest.raises(InputError, match=OVERFLOW):
        dbg.trace(ids, Q, ["L0.H1"], "downstream", interventions=huge)
    # the attention score of a layer the steered stream feeds, checked in a plain forward
    scores: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, hook: Any) -> None:
        scores["s"] = x

    logits_with(model, ids, [(HOOK, adds(1e30)), ("blocks.1.attn.hook_attn_scores", keep)])
    assert not torch.isfinite(scores["s"][0, 0, -1, 2])
    with pytest.raises(InputError, match=r"made the attention score non-finite"):
        dbg.attention(ids, AttentionScore(layer=1, head=0, key_pos=2), huge)


def test_finite_output_with_overflowing_gradients_is_refused(model: HookedTransformer) -> None:
    """gelu_new of -1e30 is exactly 0 but its derivative is NaN: the value is fine, every
    attribution through the MLP is not."""
    dbg, ids = Debugger(model), prompt()
    hook = "blocks.0.mlp.hook_pre"
    emb: dict[str, torch.Tensor] = {}

    def leaf(x: torch.Tensor, hook: Any) -> torch.Tensor:
        emb["x"] = x.detach().requires_grad_(True)
        return emb["x"]

    with torch.enable_grad():
        out = model.run_with_hooks(
            torch.tensor([ids]), fwd_hooks=[("hook_embed", leaf), (hook, adds(-1e30))]
        )[0, -1]
        value = out[3] - out[5]
        (grad,) = torch.autograd.grad(value, [emb["x"]])
    assert torch.isfinite(value) and not torch.isfinite(grad).all()
    with pytest.raises(InputError, match=r"made the gradients .* non-finite .* no attribution"):
        dbg.why(ids, Q, steer(-1e30, hook, n=model.cfg.d_mlp))


def test_a_model_that_overflows_on_its_own_is_named_as_such() -> None:
    model = random_model("gpt2")
    with torch.no_grad():
        model.W_U[:, 3] = float("inf")
    with pytest.raises(InputError, match="without any intervention"):
        Debugger(model).why(prompt(), Q)

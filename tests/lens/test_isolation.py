"""The lens runs on a private view: a user's hooks on the model are not seen (results equal those
of a freshly built copy of the model), threads do not see each other, nothing is left behind."""

from __future__ import annotations

import numpy as np
import torch

from lenscope import HookedTransformer
from lenscope.lens import evaluate_lenses, lens_generation, logit_lens
from lenscope.lens.core import lens_logits
from lenscope.lens.tuned import TunedLens
from tests.lens.fixtures import tiny, tokens
from tests.model.isolation import assert_same, clean, spoiled, while_hooking

TEXT = "The keys to the cabinet are on the"


def test_lens_calls_do_not_see_the_users_hooks() -> None:
    model, fresh = tiny(tokenizer=True), tiny(tokenizer=True)
    ids = tokens(model.cfg.d_vocab)
    tuned = TunedLens.for_model(fresh)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    stream = np.random.default_rng(0).integers(0, model.cfg.d_vocab, 400)

    def calls(m: HookedTransformer) -> dict[str, object]:
        return {
            "lens": logit_lens(m, TEXT, watch=[" the", " keys"], sublayers=True),
            "tuned": logit_lens(m, ids, tuned=tuned),
            "logits": lens_logits(m, ids),
            "gen": lens_generation(m, TEXT, 5, temperature=1.0, seed=2),
            "eval": evaluate_lenses(m, stream, tuned, ctx=16, max_batches=2),
        }

    want = calls(fresh)
    with spoiled(model):
        assert not torch.equal(model(ids), fresh(ids))  # the hook changes the model's output
        got = calls(model)
        assert not clean(model)  # the user's hook is still there
    assert_same(got, want)
    assert clean(model)


def test_threads_calling_the_lens_while_hooks_come_and_go() -> None:
    model = tiny(tokenizer=True)
    prompts = [tokens(model.cfg.d_vocab, n=9 + i, seed=i) for i in range(4)]
    want = [logit_lens(model, p, k=5) for p in prompts]
    results: dict[int, list[object]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(6):
            results[i].append(logit_lens(model, prompts[i], k=5))

    errors = while_hooking(model, work)
    assert not errors
    for i in range(4):
        assert len(results[i]) == 6
        for r in results[i]:
            assert_same(r, want[i])
    assert clean(model)

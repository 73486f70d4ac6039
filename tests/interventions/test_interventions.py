"""Interventions equal hand-written hooks on the model; they are request-scoped (nothing is left on
the model, concurrent requests do not see each other) and their requests are plain JSON."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.errors import InputError
from lenscope.interventions.spec import Ablate, InterventionSet, Patch, Steer, ablate
from lenscope.model.view import private_view
from tests.attribution.factory import logits_with, prompt, random_model

Q = LogitDiff(target=[5], distractor=[11])


def diff(logits: Tensor) -> float:
    return float(logits[5] - logits[11])


def setter(index: tuple[Any, ...], value: Tensor | float, add: bool = False) -> Any:
    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        if add:
            x[index] += value
        else:
            x[index] = value
        return x

    return fn


def value(dbg: Debugger, ids: list[int], *items: Any, **kw: Any) -> float:
    return dbg.why(ids, Q, InterventionSet.of(*items, **kw), measure=0).value


@pytest.fixture(scope="module")
def model() -> Any:
    return random_model("gpt2")


def test_ablations_equal_manual_hooks(model: Any) -> None:
    dbg = Debugger(model)
    ids, src = prompt(9, seed=1), prompt(12, seed=2)
    refs = [prompt(6, seed=s) for s in (7, 8)]
    with torch.no_grad():
        _, cs = model.run_with_cache(torch.tensor([src]))
        mean_post = torch.cat(
            [model.run_with_cache(torch.tensor([r]))[1]["post", 0][0] for r in refs]
        ).mean(0)
    cases = [
        (
            ablate("L1.H2")[0],
            [("blocks.1.attn.hook_z", setter((slice(None), slice(None), 2), 0.0))],
        ),
        (ablate("L0.N7@3")[0], [("blocks.0.mlp.hook_post", setter((slice(None), 3, 7), 0.0))]),
        (ablate("embed@2")[0], [("hook_embed", setter((slice(None), 2), 0.0))]),
        (
            ablate("L1.H0@8:3")[0],
            [("blocks.1.attn.hook_pattern", setter((slice(None), 0, 8, 3), 0.0))],
        ),
        (
            Ablate(node="L0.N7", mode="mean"),
            [("blocks.0.mlp.hook_post", setter((slice(None), slice(None), 7), mean_post[7]))],
        ),
        (
            Ablate(node="L1.H1", mode="resample", source=src),
            [
                (
                    "blocks.1.attn.hook_z",
                    setter((slice(None), slice(None), 1), cs["z", 1][0, :9, 1]),
                )
            ],
        ),
    ]
    for item, hooks in cases:
        got = value(dbg, ids, item, reference=refs)
        assert got == pytest.approx(diff(logits_with(model, ids, hooks)), abs=1e-5), item


def test_patching_and_steering_equal_manual_hooks(model: Any) -> None:
    dbg = Debugger(model)
    ids, src = prompt(9, seed=1), prompt(9, seed=2)
    # patching the whole stream entering the first block gives the source prompt's answer
    full = value(dbg, ids, Patch(hook="blocks.0.hook_resid_pre", source=src))
    assert full == pytest.approx(diff(logits_with(model, src)), abs=1e-5)
    with torch.no_grad():
        _, cs = model.run_with_cache(torch.tensor([src]))
    got = value(dbg, ids, Patch(hook="blocks.1.hook_resid_mid", source=src, positions=[3, 8]))
    hook = setter((slice(None), [3, 8]), cs["resid_mid", 1][0, [3, 8]])
    assert got == pytest.approx(
        diff(logits_with(model, ids, [("blocks.1.hook_resid_mid", hook)])), abs=1e-5
    )
    got = value(dbg, ids, Patch(hook="blocks.1.attn.hook_pattern", source=src, positions=[8]))
    hook = setter((slice(None), slice(None), 8), cs["pattern", 1][0, :, 8])
    assert got == pytest.approx(
        diff(logits_with(model, ids, [("blocks.1.attn.hook_pattern", hook)])), abs=1e-5
    )
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    got = value(
        dbg,
        ids,
        Steer(hook="blocks.1.hook_resid_pre", vector=v.tolist(), coefficient=2.5, positions=[4]),
    )
    hook = setter((slice(None), 4), 2.5 * v, add=True)
    assert got == pytest.approx(
        diff(logits_with(model, ids, [("blocks.1.hook_resid_pre", hook)])), abs=1e-5
    )


def test_nothing_is_left_on_the_model(model: Any) -> None:
    dbg = Debugger(model)
    ids = prompt()
    dbg.why(ids, Q, InterventionSet.of(*ablate("L1.H2", "L0.N3@2")), measure=3)
    dbg.trace(ids, Q, ["L1.H2:k"])
    bad = Steer(hook="blocks.1.hook_resid_pre", vector=[1.0, 2.0])
    with pytest.raises(InputError, match="does not fit"):
        dbg.why(ids, Q, InterventionSet.of(bad))
    assert all(not hp.active for hp in model.hook_dict.values())
    with private_view(model) as view:
        assert view.W_E is model.W_E
        assert view.hook_dict["hook_embed"] is not model.hook_dict["hook_embed"]
        with torch.no_grad():
            model.W_E[0, 0] += 1.0  # weights are shared, not copied
            assert float(view.W_E[0, 0]) == float(model.W_E[0, 0])
            model.W_E[0, 0] -= 1.0


def test_concurrent_requests_do_not_see_each_others_hooks(model: Any) -> None:
    dbg = Debugger(model)
    ids = prompt()
    sets = [InterventionSet.of(*ablate(f"L{i % 2}.H{i % 4}")) for i in range(4)]
    expected = [value(dbg, ids, *s.interventions) for s in sets]
    results: dict[int, list[float]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(3):
            results[i].append(dbg.why(ids, Q, sets[i], measure=2).value)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert results[i] == pytest.approx([expected[i]] * 3, abs=1e-5)
    assert len(set(round(e, 5) for e in expected)) > 1


def test_bad_interventions(model: Any) -> None:
    dbg = Debugger(model)
    ids = prompt(9)
    with pytest.raises(InputError, match="no hook point"):
        value(dbg, ids, Patch(hook="blocks.9.hook_resid_pre", source=ids))
    with pytest.raises(InputError, match="source prompt has 3 tokens"):
        value(dbg, ids, Patch(hook="blocks.0.hook_resid_pre", source=ids[:3]))
    with pytest.raises(
        InputError, match=r"reference prompts \(the intervention set's `reference`\)"
    ):
        value(dbg, ids, Ablate(node="L0.H1", mode="mean"))
    with pytest.raises(InputError, match="only be zero-ablated"):
        value(dbg, ids, Ablate(node="L0.H1@4:2", mode="mean"), reference=[ids])
    with pytest.raises(InputError, match="resample source has 4 tokens"):
        value(dbg, ids, Ablate(node="L0.H1", mode="resample", source=ids[:4]))
    with pytest.raises(InputError, match="beyond the prompt"):
        value(dbg, ids, Steer(hook="hook_embed", vector=[0.0] * 32, positions=[30]))
    with pytest.raises(InputError, match="earlier keys"):
        value(dbg, ids, *ablate("L0.H1@2:4"))


def test_requests_are_plain_json() -> None:
    s = InterventionSet.of(
        *ablate("l1.h2@3"),
        Patch(hook="blocks.0.hook_resid_pre", source="some text", positions=[1]),
        Steer(latent="L0.resid_post.F3", coefficient=-2.0),
        reference=["a", [1, 2, 3]],
    )
    again = InterventionSet.model_validate_json(s.model_dump_json())
    assert again == s
    assert again.interventions[0].node == "L1.H2@3"  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        Ablate(node="L1.H2", mode="resample")
    with pytest.raises(ValidationError):
        Steer(hook="hook_embed")
    with pytest.raises(ValidationError):
        Ablate(node="L1.Q2")
    schema = InterventionSet.model_json_schema()
    assert "discriminator" in str(schema)

"""Prompts of different lengths in one call give what each gives alone; a two-prompt comparison
is left, right and right - left of two separate questions."""

from __future__ import annotations

from typing import Any

import pytest
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.compare import Side
from lenscope.attribution.questions import LogitDiff, Prob
from lenscope.interventions.spec import InterventionSet, ablate
from tests.attribution.factory import logits_with, prompt, random_model

Q = LogitDiff(target=[5], distractor=[11])


def test_batch_of_different_lengths_equals_each_prompt_alone() -> None:
    model = random_model("rotary_rms_gqa")
    prompts = [prompt(5, seed=1), prompt(11, seed=2), prompt(8, seed=3)]
    dbg = Debugger(model)
    batch = dbg.why_batch(prompts, Q, measure=2)
    for ids, got in zip(prompts, batch, strict=True):
        alone = dbg.why(ids, Q, measure=2)
        assert got.prompt.ids == ids
        assert got.value == pytest.approx(alone.value, abs=1e-5)
        assert got.table.direct_total == pytest.approx(alone.table.direct_total, abs=1e-4)
        top = got.table.top("total_effect", "position")
        assert [r.node for r in top] == [
            r.node for r in alone.table.top("total_effect", "position")
        ]
        for a, b in zip(top, alone.table.top("total_effect", "position"), strict=True):
            assert a.total_effect == pytest.approx(b.total_effect, abs=1e-5)
            assert (a.ablation_effect is None) == (b.ablation_effect is None)
            if a.ablation_effect is not None and b.ablation_effect is not None:
                assert a.ablation_effect == pytest.approx(b.ablation_effect, abs=1e-4)
        assert len(got.tokens) == len(ids)
        for ta, tb in zip(got.tokens, alone.tokens, strict=True):
            assert ta.heads_key == pytest.approx(tb.heads_key, abs=1e-5)
            assert ta.embed == pytest.approx(tb.embed, abs=1e-5)


def test_token_view_sums_match_kind_sums() -> None:
    model = random_model("gpt2")
    r = Debugger(model).why(prompt(), Prob(token=5), measure=0)
    sums = {s.kind.value: s.total_effect for s in r.table.sums}
    assert sum(t.embed for t in r.tokens) == pytest.approx(sums["embed"], abs=1e-6)
    assert sum(t.heads_query for t in r.tokens) == pytest.approx(sums["head"], abs=1e-6)
    assert sum(t.heads_key for t in r.tokens) == pytest.approx(sums["head"], abs=1e-6)
    assert sum(t.neurons for t in r.tokens) == pytest.approx(sums["neuron"], abs=1e-6)
    p = float(logits_with(model, prompt()).softmax(-1)[5])
    assert r.value == pytest.approx(p, abs=1e-6)


def test_comparison_is_left_right_and_difference() -> None:
    model = random_model("gpt2")
    dbg = Debugger(model)
    left, right = prompt(9, seed=1), prompt(7, seed=2)
    c = dbg.compare(Q, Side(prompt=left), Side(prompt=right), measure=2)
    a, b = dbg.why(left, Q, measure=0), dbg.why(right, Q, measure=0)
    assert c.left.value == pytest.approx(a.value, abs=1e-6)
    assert c.right.value == pytest.approx(b.value, abs=1e-6)
    assert c.value_diff == pytest.approx(b.value - a.value, abs=1e-6)
    rows_a = {r.node: r for r in dbg.why(left, Q, measure=0, top_k=200).table.rows}
    for row in c.rows:
        for col in ("direct_effect", "total_effect"):
            cell = getattr(row, col)
            assert cell.diff == pytest.approx(cell.right - cell.left, abs=1e-6)
        if row.node in rows_a:
            assert row.total_effect.left == pytest.approx(rows_a[row.node].total_effect, abs=1e-6)
        assert row.position is None or row.position < 7
    assert any(r.ablation_effect is not None for r in c.rows)


def test_same_prompt_with_and_without_an_ablation() -> None:
    model = random_model("gpt2")
    dbg = Debugger(model)
    ids = prompt()
    cut = InterventionSet.of(*ablate("L1.H2"))
    c = dbg.compare(Q, Side(prompt=ids), Side(prompt=ids, interventions=cut), measure=0)

    def zero(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, :, 2] = 0.0
        return x

    ablated = logits_with(model, ids, [("blocks.1.attn.hook_z", zero)])
    clean = logits_with(model, ids)
    expected = float((ablated[5] - ablated[11]) - (clean[5] - clean[11]))
    assert c.value_diff == pytest.approx(expected, abs=1e-4)
    assert c.right.interventions == cut

"""Attention questions: the score splits exactly into query-side and key-side contributions (each
side, with its biases, sums to the score the model computed), and the token-pair view is the
model's own attention pattern."""

from __future__ import annotations

import pytest
import torch

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import AttentionScore
from lenscope.errors import InputError
from tests.attribution.factory import prompt, random_model


@pytest.mark.parametrize("kind", ["gpt2", "rotary_rms_gqa", "parallel"])
def test_query_and_key_sides_each_sum_to_the_score(kind: str) -> None:
    model = random_model(kind, layers=3)
    ids = prompt(10)
    q = AttentionScore(layer=2, head=3, query_pos=8, key_pos=5)
    a = Debugger(model).attention(ids, q)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
    score = float(cache["attn_scores", 2][0, 3, 8, 5])
    assert a.score == pytest.approx(score, abs=1e-5)
    assert a.query_total == pytest.approx(score, abs=1e-4)
    assert a.key_total == pytest.approx(score, abs=1e-4)
    assert a.probability == pytest.approx(float(cache["pattern", 2][0, 3, 8, 5]), abs=1e-6)
    # the query side only reads writes at the query position, the key side at the key position
    for row in a.rows:
        if row.granularity == "position":
            assert row.query_side == 0.0 or row.position == 8
            assert row.key_side == 0.0 or row.position == 5
            assert row.layer is None or row.layer < 2
    pairs = {p.head: p for p in a.pairs}
    assert len(pairs) == 3 * model.cfg.n_heads
    torch.testing.assert_close(
        torch.tensor(pairs["L1.H2"].attention), cache["pattern", 1][0, 2, 8, :9].float()
    )
    assert all(w >= 0 for p in a.pairs for w in p.weighted)


def test_attention_node_table_and_bad_positions() -> None:
    model = random_model("gpt2")
    ids = prompt(8)
    dbg = Debugger(model)
    r = dbg.why(ids, AttentionScore(layer=1, head=0, key_pos=2), measure=2)
    assert r.answer_position == 7 and r.key_position == 2
    assert r.candidates == []
    assert all(row.layer is None or row.layer < 1 for row in r.table.rows)
    with pytest.raises(InputError, match="earlier keys"):
        dbg.attention(ids, AttentionScore(layer=1, head=0, query_pos=3, key_pos=5))
    with pytest.raises(InputError, match="beyond the prompt"):
        dbg.attention(ids, AttentionScore(layer=1, head=0, query_pos=30, key_pos=5))
    with pytest.raises(InputError, match="head 9 does not exist"):
        dbg.attention(ids, AttentionScore(layer=1, head=9, key_pos=0))
    with pytest.raises(InputError, match="layer 5 does not exist"):
        dbg.attention(ids, AttentionScore(layer=5, head=0, key_pos=0))

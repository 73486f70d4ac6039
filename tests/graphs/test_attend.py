"""6a: a head's attention score split over graph nodes, each side summing to the score."""

from __future__ import annotations

import pytest
import torch

from lenscope.attribution.questions import AttentionScore
from lenscope.errors import InputError
from lenscope.graphs.attend import why_attends
from tests.graphs.helpers import PROMPT, random_transcoders, skip_transcoders, tiny


@pytest.mark.parametrize("kind", ["gpt2", "rotary_rms_gqa"])
def test_each_side_sums_to_the_models_score(kind: str) -> None:
    model = tiny(kind, layers=3)
    dics = random_transcoders(model, hook="ln2.hook_normalized")
    q = AttentionScore(layer=2, head=1, query_pos=6, key_pos=3)
    res = why_attends(model, PROMPT, dics, q, top_k=5)
    box: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, _h: object) -> None:
        box["s"] = x

    with torch.no_grad(), model.hooks([("blocks.2.attn.hook_attn_scores", keep)]):
        model(torch.tensor([PROMPT]))
    want = float(box["s"][0, 1, 6, 3])
    assert res.score == pytest.approx(want, abs=1e-4)
    assert res.query_total == pytest.approx(want, abs=1e-4)
    assert res.key_total == pytest.approx(want, abs=1e-4)
    for side in ("query", "key"):
        total = sum(res.by_kind[side].values()) + (
            res.query_bias if side == "query" else res.key_bias
        )
        assert total == pytest.approx(want, abs=1e-4)
    assert len(res.query_side) == 5 and res.query_side[0].node_id
    assert abs(res.query_side[0].value) >= abs(res.query_side[-1].value)


def test_skip_transcoders_and_bad_questions() -> None:
    model = tiny(layers=2)
    res = why_attends(
        model, PROMPT, skip_transcoders(model), AttentionScore(layer=1, head=0, key_pos=2)
    )
    assert res.query_total == pytest.approx(res.score, abs=1e-4)
    assert res.key_total == pytest.approx(res.score, abs=1e-4)
    with pytest.raises(InputError, match="after query"):
        why_attends(
            model,
            PROMPT,
            random_transcoders(model),
            AttentionScore(layer=1, head=0, query_pos=2, key_pos=5),
        )
    with pytest.raises(InputError, match="head 9"):
        why_attends(
            model, PROMPT, random_transcoders(model), AttentionScore(layer=1, head=9, key_pos=0)
        )

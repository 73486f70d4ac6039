"""Direct effects (final norm scale frozen) of every node plus the bias terms add up to the logit
difference exactly, on every architecture family; one node's direct effect by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenscope.attribution.api import Debugger
from lenscope.attribution.columns import writer_chunks
from lenscope.attribution.questions import Logit, LogitDiff
from lenscope.attribution.reads import combined, question_reads
from lenscope.attribution.results import WhyResult
from lenscope.nodes import NodeKind
from tests.attribution.factory import CONFIGS, hf_model, logits_with, prompt, random_model


def _direct_sum(result: WhyResult) -> float:
    nodes = sum(s.direct_effect for s in result.table.sums if s.kind is not NodeKind.LATENT)
    return float(nodes + sum(t.value for t in result.table.terms))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_direct_effects_sum_to_logit_diff(kind: str) -> None:
    model = random_model(kind)
    ids = prompt()
    q = LogitDiff(target=[5, 7], distractor=[11])
    r = Debugger(model).why(ids, q, measure=0)
    logits = logits_with(model, ids)
    expected = float((logits[5] + logits[7]) / 2 - logits[11])
    assert r.value == pytest.approx(expected, abs=1e-4)
    assert _direct_sum(r) == pytest.approx(expected, abs=1e-4)
    assert r.table.direct_total == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_direct_effects_sum_on_hf_checkpoints(family: str, tmp_path: Path) -> None:
    model = hf_model(family, tmp_path)
    ids = prompt(vocab=model.cfg.d_vocab)
    r = Debugger(model).why(ids, Logit(token=3), measure=0)
    expected = float(logits_with(model, ids)[3])
    assert r.value == pytest.approx(expected, abs=1e-4)
    assert _direct_sum(r) == pytest.approx(expected, abs=1e-4)


def test_one_heads_and_one_neurons_direct_effect_by_hand() -> None:
    model = random_model("gpt2")
    ids = prompt()
    r = Debugger(model).why(ids, LogitDiff(target=[5], distractor=[11]), measure=0)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        last = len(ids) - 1
        x = cache["resid_post", model.cfg.n_layers - 1][0, last]
        xc = x - x.mean()
        scale = (xc.pow(2).mean() + model.ln_final.eps).sqrt()
        direction = model.W_U[:, 5] - model.W_U[:, 11]
        gain = model.ln_final.w
        assert gain is not None

        def through_final(write: torch.Tensor) -> float:
            wc = write - write.mean()
            return float((wc / scale * gain) @ direction)

        heads = [row for row in r.table.rows if row.kind is NodeKind.HEAD and row.position == last]
        neurons = [
            row for row in r.table.rows if row.kind is NodeKind.NEURON and row.position == last
        ]
        assert heads and neurons
        for row in heads[:3]:
            assert row.layer is not None and row.index is not None and row.key_position is None
            write = cache["z", row.layer][0, last, row.index] @ model.W_O[row.layer, row.index]
            assert row.direct_effect == pytest.approx(through_final(write), abs=1e-5)
        for row in neurons[:3]:
            assert row.layer is not None and row.index is not None
            write = cache["post", row.layer][0, last, row.index] * model.W_out[row.layer, row.index]
            assert row.direct_effect == pytest.approx(through_final(write), abs=1e-5)


def test_token_pairs_of_a_head_add_up_to_the_head_at_each_query() -> None:
    model = random_model("rotary_rms_gqa")
    dbg = Debugger(model)
    with dbg.session([prompt()], LogitDiff(target=[5], distractor=[11])) as s:
        read = combined(*question_reads(s.cap))
        chunks = list(writer_chunks(s.cap, read))
    heads = [c for c in chunks if c.kind is NodeKind.HEAD]
    for pos, pair in zip(heads[0::2], heads[1::2], strict=True):
        assert pos.granularity == "position" and pair.granularity == "pair"
        for col in ("read", "total"):
            torch.testing.assert_close(pair.cols[col].sum(-1).transpose(1, 2), pos.cols[col])
        # a head's write at a query is the attention-weighted sum of its pair writes
        assert bool(
            (pair.cols["write_norm"].sum(-1).transpose(1, 2) >= pos.cols["write_norm"] - 1e-5).all()
        )

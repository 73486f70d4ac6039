"""The combined report on one- and two-layer models, MLP models, and its pictures."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lenscope.circuits.composition import composition_scores
from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.plots import (
    attention_patterns,
    composition_heatmap,
    save_figure,
    token_table_figure,
)
from lenscope.circuits.report import circuit_report
from lenscope.circuits.skiptrigrams import skip_trigrams
from lenscope.jsonable import to_jsonable
from tests.circuits.models import induction_model, random_model


def test_one_layer_report_has_skip_trigrams_and_no_composition() -> None:
    model = random_model(1, "LN", d_vocab=30)
    rep = circuit_report(model, k=3, n_rows=2)
    assert rep.composition == [] and rep.induction.k_composition is None
    cw = circuit_weights(model)
    expected = skip_trigrams(cw, top=10)
    assert [(t.head, t.src, t.dest, t.out) for t in rep.skip_trigrams] == [
        (t.head, t.src, t.dest, t.out) for t in expected
    ]
    assert len(rep.offsets) == 3 and rep.patterns.shape[:2] == (1, 3)
    assert [t.kind for t in rep.tables] == ["bigram", "ov", "qk", "ov", "qk"]
    json.dumps(to_jsonable(rep.to_json()))


def test_report_on_a_model_with_mlps_notes_it_and_expands_no_paths() -> None:
    model = random_model(2, "RMS", attn_only=False)
    rep = circuit_report(model, tokens=[1, 2], k=2)
    assert any("MLPs" in n for n in rep.notes) and rep.paths is None
    assert [r.token for r in rep.tables[1].rows] == [1, 2]


def test_report_with_prompt_and_pictures(tmp_path: Path) -> None:
    model = induction_model()
    prompt = torch.tensor([0, 5, 9, 7, 5, 9])
    rep = circuit_report(model, prompt=prompt)
    assert rep.paths is not None and rep.paths.max_abs_error < 1e-4
    # after '... 9 7 ... 9' the induction head alone raises the logit of 7 (it copies token 7)
    contrib = rep.paths.contributions(-1, 7)
    assert max(contrib, key=lambda k: contrib[k]) == "L1.H0" and contrib["L1.H0"] > 5.0
    top_token = int(rep.paths.logits[-1].argmax())
    assert dict(rep.path_top) == {
        k: v for k, v in rep.paths.contributions(-1, top_token).items() if k in dict(rep.path_top)
    }
    three = circuit_weights(random_model(3, "LN"))
    figs = [
        composition_heatmap([composition_scores(three, m) for m in ("Q", "K", "V")]),
        attention_patterns(rep.patterns, rep.pattern_seq_len),
        token_table_figure(rep.tables),
    ]
    for i, fig in enumerate(figs):
        png, svg = save_figure(fig, tmp_path, f"fig{i}")
        assert png.read_bytes().startswith(b"\x89PNG") and b"<svg" in svg.read_bytes()

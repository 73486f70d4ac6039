"""The lens's heatmaps carry the result's numbers and labels; notebooks get self-contained HTML."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lenscope.lens import lens_generation, logit_lens
from tests.lens.fixtures import tiny


def test_lens_heatmaps_hold_the_results_numbers(tmp_path: Path) -> None:
    m = tiny("gpt2", tokenizer=True, scale=3.0)
    res = logit_lens(m, "The keys to the cabinet", watch=[" is", " are"], k=4)
    maps = res.heatmaps()
    assert maps.stems == ["rank", "prob", "entropy", "kl", "layer_predictions", "rankings_watch"]
    by = dict(zip(maps.stems, maps.maps, strict=True))
    assert np.array_equal(by["rank"].values, res.next_rank.numpy())
    assert by["rank"].col_labels == res.tokens[1:] and by["rank"].row_labels == res.boundaries
    assert np.array_equal(by["kl"].values, res.kl.double().numpy())
    assert by["entropy"].cell_text == [
        [layer[t][0] for t in range(len(res.tokens))] for layer in res.top_tokens
    ]
    w = res.rankings_watch(-1)
    assert by["rankings_watch"].values.tolist() == w.rank
    preds = res.layer_predictions(-1)
    assert np.allclose(by["layer_predictions"].values, [p.probs for p in preds])
    html = res._repr_html_()
    assert html.count("<table") == 6 and "<script" not in html and "http" not in html


def test_generation_heatmaps_start_with_rankings() -> None:
    m = tiny("gpt2", tokenizer=True, scale=3.0)
    gen = lens_generation(m, "The keys", 5)
    maps = gen.heatmaps()
    assert maps.stems[0] == "rankings"
    assert maps.maps[0].values.tolist() == gen.rankings
    assert maps.maps[0].col_labels == gen.generated
    assert "<table" in gen._repr_html_()

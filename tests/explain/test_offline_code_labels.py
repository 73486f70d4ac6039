"""The offline explainer with code labels: a node that fires inside strings (a property no token
list can name) is said in words and simulated; the fit is least squares, checked with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from lenscope.data.code_labels import fragment_offsets, label_text
from lenscope.explain import OfflineExplainer, explain_node
from lenscope.explain.base import split_examples
from lenscope.explain.offline import code_flags
from lenscope.records.results import Example
from tests.explain.test_offline_and_scoring import record

# code pieces, split into "tokens"; every word inside a string is also code elsewhere
LINES = [
    ["x", " =", ' "', "x", " y", '"', "\n"],
    ["y", " =", " x", " +", " y", "\n"],
    ["print", "(", ' "', "print", " x", '"', ")", "\n"],
    ["print", "(", "y", ",", " x", ")", "\n"],
    ["def", " f", "(", "x", "):", " return", " y", "\n"],
]


def _in_string(pieces: list[str]) -> list[float]:
    """The truth: 2 on a token whose first visible character lies inside a string."""
    text, offsets = fragment_offsets(pieces)
    lab = label_text(text, fragment=True)
    first = [
        a + (len(p) - len(p.lstrip()) if p.strip() else 0)
        for (a, _), p in zip(offsets, pieces, strict=True)
    ]
    return [2.0 if lab.in_string[i] else 0.0 for i in first]


def _node(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    vocab: dict[str, int] = {}
    exs = []
    for i in range(24):
        pieces = [p for j in rng.integers(0, len(LINES), 4) for p in LINES[j]]
        ids = [vocab.setdefault(p, len(vocab)) for p in pieces]
        acts = _in_string(pieces)
        set_ = "top" if i < 12 else "random"
        exs.append(Example(set_, i % 12, i, max(acts), ids, pieces, acts, 0))
    return record(exs[:12], exs[12:])


def test_a_string_detector_is_said_in_words_and_simulated_better_than_tokens_alone() -> None:
    r = _node()
    with_labels = explain_node(OfflineExplainer(), r)
    tokens_only = explain_node(OfflineExplainer(labels=False), r)
    assert "Code labels: activation is higher inside strings" in with_labels.text
    assert "Code labels" not in tokens_only.text
    assert with_labels.score == pytest.approx(1.0, abs=1e-9)
    assert tokens_only.score is not None and tokens_only.score < 0.97  # quotes alone: 0.94
    assert with_labels.control is not None and with_labels.control < 0.3


def test_simulation_is_the_least_squares_fit_on_the_explanation_set() -> None:
    r = _node(1)
    sp = split_examples(r)
    ex = OfflineExplainer()
    text = ex.explain(r, sp.explain)
    lk = ex.lookup(sp.explain)
    assert [t.name for t in lk.labels] and lk.labels[0].name == "string"
    y = np.array([a for e in sp.explain for a in e.acts])
    base = np.array([a for row in lk.base(sp.explain) for a in row])
    flags = code_flags(sp.explain)
    cols = [np.ones_like(y), base] + [np.concatenate(flags[t.name]) for t in lk.labels]
    coef = np.linalg.lstsq(np.stack(cols, 1), y, rcond=None)[0]
    assert lk.coef == pytest.approx(coef.tolist(), abs=1e-9)
    sim = ex.simulate(r, text, sp.heldout)
    hb = lk.base(sp.heldout)
    hf = code_flags(sp.heldout)
    for j, row in enumerate(sim):
        want = coef[0] + coef[1] * np.array(hb[j])
        for t, w in zip(lk.labels, coef[2:], strict=True):
            want = want + w * hf[t.name][j]
        assert row == pytest.approx(want.tolist(), abs=1e-9)

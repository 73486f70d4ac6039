"""Empirical (context -> next token) counts of a training sequence, and the model/data table."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from lenscope.errors import InputError
from lenscope.markov import compare, empirical_transitions, transition_matrix
from lenscope.markov.chain import chain_from_probs
from tests.markov.lookup import LookupModel, random_table

KARPATHY = "111101111011110"


def test_karpathy_sequence_manual_count() -> None:
    emp = empirical_transitions(KARPATHY, 2, 3)
    # 12 windows: 111->1, 111->0, 110->1, 101->1, 011->1, 111->1, 111->0, 110->1, 101->1,
    # 011->1, 111->1, 111->0
    expected = {"111": [3, 3], "110": [0, 2], "101": [0, 2], "011": [0, 2]}
    assert emp.n_examples == 12
    for state, counts in zip(emp.states, emp.counts.tolist(), strict=True):
        assert counts == expected.get(state, [0, 0]), state
    assert emp.seen_states == ["011", "101", "110", "111"]
    assert emp.unseen_states == ["000", "001", "010", "100"]
    freqs = emp.frequencies
    np.testing.assert_allclose(freqs[emp.states.index("111")], [0.5, 0.5])
    np.testing.assert_allclose(freqs[emp.states.index("101")], [0.0, 1.0])
    assert np.isnan(freqs[emp.states.index("000")]).all()
    data = json.loads(json.dumps(emp.to_json()))
    assert data["frequencies"][0] is None and data["n_examples"] == 12


def test_include_short_counts_window_prefixes() -> None:
    tokens = [int(c) for c in KARPATHY]
    expected: Counter[tuple[str, int]] = Counter()
    for i in range(len(tokens) - 3):
        for k in (1, 2, 3):
            expected["".join(map(str, tokens[i : i + k])), tokens[i + k]] += 1
    emp = empirical_transitions(KARPATHY, 2, 3, include_short=True)
    assert len(emp.states) == 14
    got = Counter(
        {
            (state, t): int(emp.counts[i, t])
            for i, state in enumerate(emp.states)
            for t in range(2)
            if emp.counts[i, t]
        }
    )
    assert got == expected


def test_token_list_input_and_larger_vocab() -> None:
    emp = empirical_transitions([0, 2, 1, 2, 1, 0], 3, 2)
    assert emp.counts[emp.states.index("21")].tolist() == [1, 0, 1]
    assert emp.counts[emp.states.index("12")].tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("sequence", "match"),
    [
        ("11201", r"symbol '2' at position 2 .* 0\.\.1"),
        ("1a1101", "symbol 'a' at position 1"),
        ("1 1101", "symbol ' ' at position 1"),
        ("101", "more than the context length 3"),
        ([1, 0, 5, 1, 1], "symbol 5 at position 2"),
        ([1, 0, -1, 1, 1], "symbol -1 at position 2"),
    ],
)
def test_bad_sequences(sequence: str | list[int], match: str) -> None:
    with pytest.raises(InputError, match=match):
        empirical_transitions(sequence, 2, 3)


def test_comparison_table() -> None:
    emp = empirical_transitions(KARPATHY, 2, 3)
    # a "perfectly trained" model: data frequencies where seen, 50/50 elsewhere
    probs = np.where(emp.seen[:, None], emp.frequencies, 0.5)
    table = compare(chain_from_probs(probs, 2, 3), emp)
    assert table.seen_states == emp.seen_states and table.unseen_states == emp.unseen_states
    assert table.mean_total_variation == pytest.approx(0.0)
    row = table.rows[emp.states.index("101")]
    assert row.seen and row.count == 2 and row.empirical == [0.0, 1.0]
    assert table.rows[0].empirical is None and table.rows[0].total_variation is None
    text = table.format_table()
    assert text.splitlines()[0].split() == ["state", "seen", "n", "model", "%", "data", "%", "TV"]
    assert "101    yes   2  0/100" in text
    assert json.loads(json.dumps(table.to_json()))["rows"][7]["count"] == 6


def test_comparison_with_a_model_and_mismatch() -> None:
    chain = transition_matrix(LookupModel(random_table(2, 3), 2, 3), 2, 3)
    emp = empirical_transitions(KARPATHY, 2, 3)
    table = compare(chain, emp)
    tv = table.rows[emp.states.index("111")].total_variation
    p0 = chain.next_token_probs[emp.states.index("111"), 0]
    assert tv == pytest.approx(abs(p0 - 0.5))
    with pytest.raises(InputError, match="same V, C and include_short"):
        compare(chain, empirical_transitions(KARPATHY, 2, 3, include_short=True))

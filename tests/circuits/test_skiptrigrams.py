"""Skip-trigrams of a one-layer model against an exhaustive search over dense circuits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lenscope.circuits.folding import circuit_weights
from lenscope.circuits.skiptrigrams import skip_trigrams, trigram_score
from lenscope.errors import InputError
from tests.circuits.dense import dense
from tests.circuits.models import random_model


def test_exhaustive_search_matches_brute_force() -> None:
    V = 12
    model = random_model(1, "LN", d_vocab=V, seed=4)
    cw = circuit_weights(model, freeze_scales=False)
    D = dense(model)
    found = skip_trigrams(cw, head=2, n_src=V, k=V, top=5)
    ov = D.E @ D.WV[0, 2] @ D.WO[0, 2] @ D.WU
    qk = (D.E @ D.WQ[0, 2]) @ (D.E @ D.WK[0, 2]).T / np.sqrt(D.dh)
    ov_c = ov - ov.mean(1, keepdims=True)
    qk_c = qk - qk.mean(1, keepdims=True)
    brute = []
    for src, dest, out in itertools.product(range(V), repeat=3):
        a, b = qk_c[dest, src], ov_c[src, out]
        if a > 0 and b > 0:
            brute.append((a * b, src, dest, out))
    brute.sort(reverse=True)
    assert [(t.src, t.dest, t.out) for t in found] == [b[1:] for b in brute[:5]]
    for t in found:
        assert t.score == pytest.approx(qk_c[t.dest, t.src] * ov_c[t.src, t.out], rel=1e-9)
        assert t.score == pytest.approx(trigram_score(cw, 0, 2, t.src, t.dest, t.out), rel=1e-9)
        assert t.head == "L0.H2" and "…" in t.text and "→" in t.text


def test_all_heads_sorted_and_needs_one_layer() -> None:
    cw = circuit_weights(random_model(1, "none", d_vocab=30))
    found = skip_trigrams(cw, n_src=4, k=2, top=3, label=lambda i: f"t{i}")
    assert len(found) <= 9 and {t.head for t in found} <= {"L0.H0", "L0.H1", "L0.H2"}
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)
    assert found[0].text.startswith("'t")
    with pytest.raises(InputError, match="1-layer"):
        skip_trigrams(circuit_weights(random_model(2, "none")))

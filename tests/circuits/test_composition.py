"""Composition and copying scores against brute force on dense matrices."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import pytest
import torch

from lenscope.circuits.composition import Mode, composition_scores, copying_scores, random_baseline
from lenscope.circuits.folding import circuit_weights
from lenscope.errors import InputError
from tests.circuits.dense import comp_score, dense
from tests.circuits.models import random_model


@pytest.mark.parametrize("norm", ["LN", "none"])
def test_composition_scores_match_brute_force(norm: str) -> None:
    model = random_model(3, norm, d_model=16, n_heads=2)
    cw = circuit_weights(model)
    D = dense(model)
    L, H = 3, 2
    OV = [[D.WV[a, b] @ D.WO[a, b] for b in range(H)] for a in range(L)]
    QK = [[D.WQ[a, b] @ D.WK[a, b].T for b in range(H)] for a in range(L)]
    modes: tuple[Mode, ...] = ("Q", "K", "V")
    for mode in modes:
        cs = composition_scores(cw, mode)
        for l1 in range(L):
            for h1 in range(H):
                for l2 in range(L):
                    for h2 in range(H):
                        got = cs.score((l1, h1), (l2, h2))
                        if l1 >= l2:
                            assert math.isnan(got)
                            continue
                        right = {"Q": QK[l2][h2], "K": QK[l2][h2].T, "V": OV[l2][h2]}[mode]
                        assert got == pytest.approx(comp_score(OV[l1][h1], right), rel=1e-9)
        pairs = cs.pairs()
        assert len(pairs) == 3 * H * H  # (0,1), (0,2), (1,2) layer pairs
        assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)
    with pytest.raises(InputError, match="Q, K, V"):
        composition_scores(cw, "X")  # type: ignore[arg-type]


def test_composition_is_scale_free_so_frozen_scales_do_not_matter() -> None:
    model = random_model(2, "LN")
    a = composition_scores(circuit_weights(model), "K").scores
    b = composition_scores(circuit_weights(model, freeze_scales=False), "K").scores
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-12)


@pytest.mark.parametrize("norm", ["LN", "RMS", "none"])
def test_copying_scores_match_dense_eigenvalues(norm: str) -> None:
    model = random_model(2, norm)
    cw = circuit_weights(model)
    D = dense(model)
    scores = copying_scores(cw)
    for layer in range(2):
        for h in range(3):
            M = D.E @ D.WV[layer, h] @ D.WO[layer, h] @ D.WU  # [V, V]
            ev = np.linalg.eigvals(M)
            expected = ev.real.sum() / np.abs(ev).sum()
            assert scores.of(layer, h) == pytest.approx(expected, abs=1e-8)
    assert set(scores.to_json()) == {f"L{a}.H{b}" for a in range(2) for b in range(3)}


def test_copying_score_of_a_pure_copying_head_is_one() -> None:
    model = random_model(1, "none", d_model=12, n_heads=2, d_vocab=12)
    eye = torch.eye(12)
    with torch.no_grad():
        model.W_E.copy_(eye)
        model.unembed.copy_(eye)  # type: ignore[union-attr]
        attn = cast(Any, model.blocks[0]).attn
        w = attn.w_qkv.view(12, 3, 2, 6)  # [d, q/k/v, head, d_head]
        w[:, 2, 0] = eye[:, :6]
        w[:, 2, 1] = eye[:, :6]
        attn.w_o.view(2, 6, 12)[0] = 2.0 * eye[:6]  # OV = 2 x projection: copies
        attn.w_o.view(2, 6, 12)[1] = -eye[:6]  # OV = -projection: anti-copies
    scores = copying_scores(circuit_weights(model))
    assert scores.of(0, 0) == pytest.approx(1.0)
    assert scores.of(0, 1) == pytest.approx(-1.0)


def test_random_baseline_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    d, dh = 32, 8
    vals = []
    for _ in range(300):
        a = rng.standard_normal((d, dh)) @ rng.standard_normal((dh, d))
        b = rng.standard_normal((d, dh)) @ rng.standard_normal((dh, d))
        vals.append(comp_score(a, b))
    assert random_baseline(d, dh, samples=256) == pytest.approx(float(np.mean(vals)), abs=0.01)

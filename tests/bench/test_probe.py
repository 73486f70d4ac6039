"""Logistic probes against closed forms and the optimality conditions; sparse probing's latent
choice against a brute-force loop; bad input as one clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lenscope.bench.probe import fit_logistic, top_k_mean_diff
from lenscope.bench.probing import balanced_split, probe_task, sparse_probing
from lenscope.errors import InputError


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_unpenalised_probe_on_one_binary_feature_is_the_closed_form() -> None:
    # x in {0, 1}: the maximum-likelihood fit has sigmoid(b) = P(y|x=0), sigmoid(b+w) = P(y|x=1)
    x = torch.tensor([0.0] * 10 + [1.0] * 10)[:, None]
    y = torch.tensor([1] * 3 + [0] * 7 + [1] * 8 + [0] * 2)
    p = fit_logistic(x, y, C=math.inf, standardize=False)
    assert p.b == pytest.approx(_logit(0.3), abs=1e-8)
    assert float(p.w[0]) == pytest.approx(_logit(0.8) - _logit(0.3), abs=1e-8)
    assert p.accuracy(x, y) == pytest.approx(15 / 20)


def test_penalised_probe_satisfies_the_optimality_conditions() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([1, 5, 0.1, 2, 1, 3]) + 2
    y = (x @ rng.normal(size=6) + rng.normal(size=300) > 0).astype(np.int64)
    p = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), C=0.5)
    z = (x - x.mean(0)) / x.std(0)  # numpy's own standardisation
    w, b = p.w.numpy(), p.b
    q = 1 / (1 + np.exp(-(z @ w + b)))
    grad_w = z.T @ (q - y) + w / 0.5  # d/dw [sum log-loss + |w|^2 / (2C)]
    grad_b = float((q - y).sum())
    assert np.abs(grad_w).max() < 1e-6 and abs(grad_b) < 1e-6


def test_top_k_mean_diff_is_the_brute_force_ranking() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 9, generator=g)
    y = (torch.rand(50, generator=g) > 0.5).long()
    got = top_k_mean_diff(x, y, 4).tolist()
    diffs = []
    for j in range(9):
        pos = [float(x[i, j]) for i in range(50) if y[i] == 1]
        neg = [float(x[i, j]) for i in range(50) if y[i] == 0]
        diffs.append(abs(sum(pos) / len(pos) - sum(neg) / len(neg)))
    assert got == sorted(range(9), key=lambda j: -diffs[j])[:4]


def test_balanced_split_has_equal_classes_and_no_overlap() -> None:
    y = np.array([1] * 30 + [0] * 200 + [-1] * 10, dtype=np.int8)
    sp = balanced_split(y, per_class=1000, seed=0)
    rows = np.concatenate([sp.train.numpy(), sp.test.numpy()])
    assert len(set(rows.tolist())) == len(rows) == 60
    assert (y[rows] == 1).sum() == (y[rows] == 0).sum() == 30
    assert len(sp.test) == 12


def test_a_latent_that_is_the_label_gives_a_perfect_one_latent_probe() -> None:
    g = torch.Generator().manual_seed(2)
    n = 400
    y = (torch.rand(n, generator=g) > 0.5).to(torch.int8)
    latents = torch.rand(n, 20, generator=g) * 0.5
    latents[:, 13] = y.float() * 3  # latent 13 fires exactly on the label
    acts = torch.randn(n, 8, generator=g)
    t = probe_task("toy", acts, latents, y.numpy(), [1, 2])
    assert t.latents["1"] == [13] and t.sparse_accuracy["1"] == 1.0
    assert 0.3 < t.full_accuracy < 0.7  # the activations know nothing of it


def test_bad_probe_input_is_one_clear_error() -> None:
    acts, lat = torch.randn(40, 4), torch.rand(40, 6)
    one_class = np.ones(40, dtype=np.int8)
    with pytest.raises(InputError, match="single class"):
        probe_task("all-ones", acts, lat, one_class, [1])
    y = np.array([0, 1] * 20, dtype=np.int8)
    with pytest.raises(InputError, match="larger than the dictionary's 6 latents"):
        probe_task("toy", acts, lat, y, [7])
    with pytest.raises(InputError, match="at least one labelled task"):
        sparse_probing(acts, lat, {}, [1])
    with pytest.raises(InputError, match="single class"):
        fit_logistic(acts, torch.zeros(40, dtype=torch.long))

"""The per-batch kernels against plain loops: power sums, batch top-k with ties, quantile bins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lenscope.records.batch_stats as batch_stats
from lenscope.records.batch_stats import Workspace, batch_top, bins_of, moment_sums


@pytest.mark.parametrize("plane", [64, 1 << 20])  # many chunks, one chunk
def test_moment_sums_are_the_float64_sums(monkeypatch: pytest.MonkeyPatch, plane: int) -> None:
    monkeypatch.setattr(batch_stats, "PLANE_ELEMENTS", plane)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(300, 7, generator=g) * 3 + 1).relu()
    shift = torch.randn(7, generator=g)
    got = moment_sums(x, shift, Workspace()).numpy()
    d = x.double().numpy() - shift.double().numpy()
    for k in range(4):
        np.testing.assert_allclose(got[k], (d ** (k + 1)).sum(0), rtol=2e-5, atol=1e-3)
    assert got[4].tolist() == (x.numpy() > 0).sum(0).tolist()


def test_batch_top_breaks_ties_by_token_order() -> None:
    g = torch.Generator().manual_seed(1)
    xt = torch.randint(0, 3, (40, 50), generator=g).float()
    xt[0] = 0.0  # all equal
    xt[1] = torch.arange(50).float()  # no ties
    for k in (1, 5, 50):
        rows, toks = batch_top(xt, k)
        for r in range(xt.shape[0]):
            v = xt[r].tolist()
            want = sorted(range(50), key=lambda t: (-v[t], t))[:k]
            assert sorted(toks[rows == r].tolist()) == sorted(want), (r, k)


def test_bins_are_the_half_open_quantile_intervals() -> None:
    bounds = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 2.0, 3.0]])  # equal bounds: an empty bin
    xt = torch.tensor([[-0.5, 0.0, 0.5, 1.0, 7.0], [-2.0, -1.0, 2.5, 3.0, 2.0]])
    want = [
        [max((i for i in range(3) if x >= bounds[n, i]), default=-1) for x in xt[n].tolist()]
        for n in range(2)
    ]
    assert bins_of(xt, bounds).tolist() == want

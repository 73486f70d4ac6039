"""A TopK SAE's latents kept sparse through a harvest: the sparse kernels equal the dense ones on
the same activations, and a whole harvest gives the same records either way."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from lenscope.records import Records, harvest
from lenscope.records import batch_stats as dense_k
from lenscope.records import sparse as sparse_k
from lenscope.records.batch_stats import Workspace
from lenscope.records.sparse import SparseRows
from lenscope.sae import SAEConfig, SparseAutoencoder
from tests.records.helpers import small_config, tiny_model, token_dataset

INF = float("inf")


def _rows(t: int = 40, n: int = 30, k: int = 3, seed: int = 0) -> SparseRows:
    """k distinct latents per token, the first half crowding onto latents 0-5; values
    quantised (ties) and some exactly 0 (ReLU'd)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(t, n, generator=g)
    scores[: t // 2, :6] += 1.0
    idx = scores.topk(k, 1).indices
    val = (torch.randint(0, 5, (t, k), generator=g) / 4).float()
    return SparseRows(idx, val, n)


@pytest.mark.parametrize("dense_lookups", [1 << 40, 1])  # binary searches only / dense only
def test_rows_lookups_and_dense_agree(monkeypatch: pytest.MonkeyPatch, dense_lookups: int) -> None:
    monkeypatch.setattr(sparse_k, "DENSE_LOOKUPS", dense_lookups)
    x = _rows()
    d = x.dense()
    assert d.shape == x.shape and (d != 0).sum() == (x.val != 0).sum()
    tok = torch.tensor([[0, 5, 39], [2, 2, 7]])
    node = torch.tensor([[3], [11]])
    assert torch.equal(x[tok, node], d[tok, node])
    every_t, every_n = torch.arange(x.shape[0])[:, None], torch.arange(x.n)[None, :]
    assert torch.equal(x[every_t, every_n], d)  # every cell: hits, misses, both row ends
    rows = torch.tensor([4, 0, 4])
    assert torch.equal(x.index_select(0, rows), d.index_select(0, rows))


@pytest.mark.parametrize("seed", range(3))
def test_moments_and_extrema_equal_the_dense_kernels(seed: int) -> None:
    x = _rows(seed=seed)
    d = x.dense()
    shift = torch.randn(x.n, generator=torch.Generator().manual_seed(seed)) * 0.3
    ref = torch.stack(
        [((d.double() - shift.double()) ** p).sum(0) for p in range(1, 5)]
        + [(d > 0).double().sum(0)]
    )
    torch.testing.assert_close(sparse_k.moment_sums(x, shift), ref, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(
        dense_k.moment_sums(d, shift, Workspace()), ref, rtol=1e-5, atol=1e-4
    )
    lo, hi = sparse_k.extrema(x)
    assert torch.equal(lo, d.amin(0)) and torch.equal(hi, d.amax(0))


def _as_set(cand: tuple[torch.Tensor, torch.Tensor] | None) -> set[tuple[int, int, float]]:
    if cand is None:
        return set()
    key, tok = cand
    r, c = torch.nonzero(key < INF, as_tuple=True)
    return {(int(a), int(b), float(v)) for a, b, v in zip(r, tok[r, c], key[r, c], strict=True)}


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_top_candidates_equal_the_dense_kernel(strict: bool, seed: int) -> None:
    """Every regime: nodes holding fewer than k (-inf), a k-th best of 0 (zeros tie), and
    positive k-th bests below, at and above the batch's values; more than k qualifying."""
    x = _rows(seed=seed)
    d = x.dense()
    k = 4
    g = torch.Generator().manual_seed(100 + seed)
    kth = torch.randint(0, 5, (x.n,), generator=g).float() / 4
    kth[torch.rand(x.n, generator=g) < 0.3] = -INF
    kth[:3] = torch.tensor([0.0, -INF, 1.0])
    want = _as_set(dense_k.top_candidates(d, d.amax(0), kth, k, strict))
    got = _as_set(sparse_k.top_candidates(x, kth, k, strict))
    assert got == {(n, t, v + 0.0) for n, t, v in want}  # -0.0 keys compare as 0.0


def test_a_harvest_is_the_same_sparse_or_dense(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse SAE (k 3 of 96 latents: most latents hold fewer than k examples for a while,
    so zeros enter top-k sets) harvested through SparseRows and through dense encode."""
    model = tiny_model()
    sae = SparseAutoencoder(SAEConfig(d_in=32, d_sae=96, k=3, hook_name="blocks.0.hook_resid_post"))
    ds = token_dataset(tmp_path / "tokens")
    cfg = small_config()

    def run(out: Path) -> Records:
        harvest(
            model,
            out,
            saes=[sae],
            config=cfg,
            corpus=[str(ds)],
            progress=False,
            log=lambda _: None,
        )
        return Records(out, model)

    sparse_recs = run(tmp_path / "sparse")
    monkeypatch.setattr(SparseAutoencoder, "encode_topk", lambda self, x: None)
    dense_recs = run(tmp_path / "dense")
    ids = [i for i in sparse_recs.node_ids() if ".resid_post.F" in i]
    assert ids == [i for i in dense_recs.node_ids() if ".resid_post.F" in i] and len(ids) == 96
    for a, b in zip(sparse_recs.nodes(ids), dense_recs.nodes(ids), strict=True):
        _assert_same(asdict(a), asdict(b), a.node_id)


def _assert_same(a: Any, b: Any, where: str) -> None:
    """Equal, floats to 1e-5 relative (moments are summed in another order) and NaN to NaN."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(
            a, b, rel_tol=1e-5, abs_tol=1e-6
        ), (
            where,
            a,
            b,
        )
    else:
        assert a == b, (where, a, b)

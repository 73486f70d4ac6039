"""FactoredMatrix against dense float64 numpy/torch on random matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenscope.errors import InputError, LenscopeError
from lenscope.model.factored import FactoredMatrix


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1000 * len(shape) + sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def close(x: torch.Tensor, y: torch.Tensor | np.ndarray, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-9)


def fm(m: int, r: int, n: int, *batch: int, seed: int = 0) -> FactoredMatrix:
    return FactoredMatrix(rand(*batch, m, r, seed=seed), rand(*batch, r, n, seed=seed + 1))


def sorted_multiset(ev: np.ndarray) -> np.ndarray:
    """Sort complex numbers robustly for multiset comparison (by rounded real, then imag)."""
    ev = np.asarray(ev, dtype=np.complex128)
    key = np.lexsort((np.round(ev.imag, 6), np.round(ev.real, 6)))
    return ev[key]


@pytest.mark.parametrize(("m", "r", "n"), [(7, 3, 5), (4, 6, 5), (6, 2, 6), (1, 3, 4)])
def test_shape_dense_and_transpose(m: int, r: int, n: int) -> None:
    f = fm(m, r, n)
    dense = f.A.numpy() @ f.B.numpy()
    assert f.shape == (m, n) and f.ldim == m and f.mdim == r and f.rdim == n and f.ndim == 2
    close(f.AB, dense)
    assert f.T.shape == (n, m)
    close(f.T.AB, dense.T)
    close(f.get_corner(2), dense[:2, :2])


def test_ba_is_the_small_side_and_needs_square() -> None:
    f = fm(6, 2, 6)
    close(f.BA, f.B @ f.A)
    assert f.BA.shape == (2, 2)
    with pytest.raises(InputError, match="square"):
        _ = fm(5, 2, 6).BA


@pytest.mark.parametrize(("r", "n", "p", "inner"), [(2, 6, 4, 2), (8, 5, 4, 5)])
def test_matmul_tensor_right_keeps_cheaper_inner_dim(r: int, n: int, p: int, inner: int) -> None:
    f = fm(7, r, n)
    x = rand(n, p, seed=5)
    out = f @ x
    assert isinstance(out, FactoredMatrix)
    assert out.mdim == inner and out.shape == (7, p)
    close(out.AB, f.AB @ x)


@pytest.mark.parametrize(("m", "r", "inner"), [(6, 2, 2), (4, 9, 4)])
def test_matmul_tensor_left(m: int, r: int, inner: int) -> None:
    f = fm(m, r, 5)
    x = rand(3, m, seed=6)
    out = x @ f
    assert isinstance(out, FactoredMatrix)
    assert out.mdim == inner and out.shape == (3, 5)
    close(out.AB, x @ f.AB)


@pytest.mark.parametrize(("r1", "n1", "r2", "inner"), [(2, 6, 3, 2), (4, 6, 3, 3), (5, 2, 5, 2)])
def test_matmul_two_factored(r1: int, n1: int, r2: int, inner: int) -> None:
    f = fm(7, r1, n1, seed=1)
    g = fm(n1, r2, 4, seed=3)
    out = f @ g
    assert out.mdim == inner and out.shape == (7, 4)
    close(out.AB, f.AB @ g.AB)


def test_vectors_and_scalars() -> None:
    f = fm(5, 2, 4)
    v, w = rand(4, seed=8), rand(5, seed=9)
    close(f.mv(v), f.AB @ v)
    close(f.vm(w), w @ f.AB)
    close((2.5 * f).AB, 2.5 * f.AB)
    close((f * -1).AB, -f.AB)
    with pytest.raises(InputError, match="mv"):
        _ = f @ v


@pytest.mark.parametrize(("m", "r", "n"), [(8, 3, 6), (5, 7, 4), (4, 4, 9)])
def test_svd_matches_dense(m: int, r: int, n: int) -> None:
    f = fm(m, r, n)
    dense = f.AB.numpy()
    U, S, Vh = f.svd()
    k = min(m, r, n)
    assert U.shape == (m, k) and S.shape == (k,) and Vh.shape == (k, n)
    close(S, np.linalg.svd(dense, compute_uv=False)[:k])
    close(U @ torch.diag(S) @ Vh, dense)
    close(U.T @ U, np.eye(k))
    close(Vh @ Vh.T, np.eye(k))
    close(f.collapse_r() @ Vh, dense)
    close(U @ f.collapse_l(), dense)
    thin = f.thin()
    assert thin.mdim == k
    close(thin.AB, dense)


def test_norm_matches_dense() -> None:
    f = fm(9, 3, 7, 2, 3)
    close(f.norm(), np.linalg.norm(f.AB.numpy(), axis=(-2, -1)))
    assert f.norm().shape == (2, 3)


@pytest.mark.parametrize(("n", "r"), [(6, 2), (5, 5), (3, 7)])
def test_eigenvalues_multiset_with_zero_padding(n: int, r: int) -> None:
    f = fm(n, r, n, seed=4)
    ours = f.eigenvalues.numpy()
    assert ours.shape == (n,)
    dense = np.linalg.eigvals(f.AB.numpy())
    np.testing.assert_allclose(sorted_multiset(ours), sorted_multiset(dense), atol=1e-7)
    mags = np.abs(ours)
    assert np.all(np.diff(mags) <= 1e-12)
    if r < n:
        assert np.count_nonzero(np.abs(ours) < 1e-12) >= n - r


def test_eigenvalues_batched() -> None:
    f = fm(5, 2, 5, 3, seed=2)
    ev = f.eigenvalues
    assert ev.shape == (3, 5)
    for i in range(3):
        dense = np.linalg.eigvals(f.AB[i].numpy())
        np.testing.assert_allclose(
            sorted_multiset(ev[i].numpy()), sorted_multiset(dense), atol=1e-7
        )


def test_rank() -> None:
    a = rand(6, 4)
    b = rand(4, 5, seed=1)
    b[3] = b[0] + b[1]  # rank 3
    f = FactoredMatrix(a, b)
    assert int(f.rank) == 3 == np.linalg.matrix_rank(f.AB.numpy())
    g = fm(6, 2, 5, 4)
    assert g.rank.shape == (4,) and g.rank.tolist() == [2, 2, 2, 2]


def test_batched_dims_broadcast_and_index() -> None:
    A = rand(3, 4, 6, 2)
    B = rand(2, 5, seed=1)  # broadcast over [3, 4]
    f = FactoredMatrix(A, B)
    assert f.shape == (3, 4, 6, 5) and f.batch_shape == (3, 4)
    dense = A.numpy() @ B.numpy()
    close(f.AB, dense)
    close(f[1].AB, dense[1])
    close(f[2, 3].AB, dense[2, 3])
    close(f[:, 1:3].AB, dense[:, 1:3])
    close(f[torch.tensor([0, 2])].AB, dense[[0, 2]])
    close(f.T.AB, np.swapaxes(dense, -1, -2))
    U, S, Vh = f.svd()
    close(U @ torch.diag_embed(S) @ Vh, dense)
    close((f @ rand(5, 3, seed=7)).AB, dense @ rand(5, 3, seed=7).numpy())
    with pytest.raises(InputError, match=r"rows\(idx\)"):
        _ = f[0, 0, 1]
    with pytest.raises(InputError, match="batch dims only"):
        _ = f[..., 0]  # type: ignore[index]


def test_both_factors_broadcast() -> None:
    A, B = rand(3, 1, 5, 2), rand(1, 4, 2, 6, seed=1)
    f = FactoredMatrix(A, B)
    assert f.shape == (3, 4, 5, 6)
    close(f.AB, A.numpy() @ B.numpy())
    close(f[2, 1].AB, A[2, 0].numpy() @ B[0, 1].numpy())


def test_rows_and_cols() -> None:
    f = fm(7, 3, 6, 2)
    dense = f.AB.numpy()
    close(f.rows([1, 4]).AB, dense[:, [1, 4], :])
    close(f.rows(2).AB, dense[:, [2], :])
    close(f.rows(slice(0, 3)).AB, dense[:, :3, :])
    close(f.cols(torch.tensor([5, 0])).AB, dense[:, :, [5, 0]])
    close(f.cols(3).AB, dense[:, :, [3]])
    close(f.rows([0, 6]).cols([1, 2]).AB, dense[:, [0, 6]][:, :, [1, 2]])


def test_dtype_promotion_and_float32() -> None:
    a = torch.randn(4, 2, dtype=torch.float32)
    b = torch.randn(2, 4, dtype=torch.float64)
    f = FactoredMatrix(a, b)
    assert f.dtype == torch.float64


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (torch.zeros(3, 2), torch.zeros(3, 4), "inner dims"),
        (torch.zeros(3), torch.zeros(3, 4), "at least 2"),
        (torch.zeros(2, 3, 2), torch.zeros(3, 2, 4), "broadcast"),
        (np.zeros((3, 2)), torch.zeros(2, 4), "torch tensors"),
    ],
)
def test_bad_factors(a: object, b: object, match: str) -> None:
    with pytest.raises(LenscopeError, match=match):
        FactoredMatrix(a, b)  # type: ignore[arg-type]


def test_bad_product_shapes() -> None:
    f = fm(4, 2, 5)
    with pytest.raises(InputError, match="5 columns vs 3 rows"):
        _ = f @ torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="columns vs 4 rows"):
        _ = torch.zeros(2, 3, dtype=torch.float64) @ f
    with pytest.raises(InputError, match="5 columns vs 3 rows"):
        _ = f @ fm(3, 2, 2)

"""A low-rank matrix product A @ B kept as its two factors.

Circuit analysis keeps meeting products such as W_Q W_K^T (d_model x d_model, rank d_head) or
W_E W_V W_O W_U (vocab x vocab, rank d_head). Materialising them costs m*n memory; the factors cost
(m + n) * r. `FactoredMatrix` stores A [..., m, r] and B [..., r, n] (leading batch dims such as
[n_layers, n_heads] broadcast between the two) and answers the usual questions — products, transpose,
SVD, Frobenius norm, eigenvalues, rank, slicing — from the factors and the small r x r side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from lenscope.errors import InputError

Index = int | slice | Sequence[int] | Tensor


class FactoredSVD(NamedTuple):
    """Thin SVD of A @ B: U [..., m, k], S [..., k] (descending), Vh [..., k, n], k = min(m, r, n)."""

    U: Tensor
    S: Tensor
    Vh: Tensor


class FactoredMatrix:
    """A @ B without materialising it: A [..., m, r], B [..., r, n] with broadcast batch dims."""

    def __init__(self, A: Tensor, B: Tensor) -> None:
        if not isinstance(A, Tensor) or not isinstance(B, Tensor):
            raise InputError(
                "FactoredMatrix factors must be torch tensors; convert with torch.as_tensor()"
            )
        if A.ndim < 2 or B.ndim < 2:
            raise InputError(
                f"FactoredMatrix factors need at least 2 dims, got A {tuple(A.shape)} and "
                f"B {tuple(B.shape)}; add a dim with .unsqueeze()"
            )
        if A.shape[-1] != B.shape[-2]:
            raise InputError(
                f"FactoredMatrix inner dims differ: A {tuple(A.shape)} has {A.shape[-1]} columns "
                f"but B {tuple(B.shape)} has {B.shape[-2]} rows; they must match"
            )
        batch = _broadcast(tuple(A.shape[:-2]), tuple(B.shape[:-2]))
        if A.dtype != B.dtype:
            dtype = torch.promote_types(A.dtype, B.dtype)
            A, B = A.to(dtype), B.to(dtype)
        self.A: Tensor = A.expand(*batch, *A.shape[-2:])
        self.B: Tensor = B.expand(*batch, *B.shape[-2:])

    # ---------------------------------------------------------------- shape and dense views
    @property
    def ldim(self) -> int:
        """m, the number of rows of A @ B."""
        return int(self.A.shape[-2])

    @property
    def mdim(self) -> int:
        """r, the inner (factorisation) dim."""
        return int(self.A.shape[-1])

    @property
    def rdim(self) -> int:
        """n, the number of columns of A @ B."""
        return int(self.B.shape[-1])

    @property
    def batch_shape(self) -> torch.Size:
        return self.A.shape[:-2]

    @property
    def shape(self) -> torch.Size:
        """Shape of the (virtual) dense matrix: (*batch, m, n)."""
        return torch.Size((*self.batch_shape, self.ldim, self.rdim))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.A.dtype

    @property
    def device(self) -> torch.device:
        return self.A.device

    @property
    def AB(self) -> Tensor:
        """The dense product A @ B, [..., m, n]."""
        return self.A @ self.B

    @property
    def BA(self) -> Tensor:
        """The small side B @ A, [..., r, r]; defined only for square A @ B (m == n)."""
        self._require_square("BA")
        return self.B @ self.A

    @property
    def T(self) -> FactoredMatrix:
        """Transpose of the last two dims, still factored: B^T @ A^T."""
        return FactoredMatrix(self.B.mT, self.A.mT)

    def get_corner(self, k: int = 3) -> Tensor:
        """The dense top-left k x k block (per batch element), computed from k rows and k columns."""
        return self.A[..., :k, :] @ self.B[..., :, :k]

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={tuple(self.shape)}, inner={self.mdim}, dtype={self.dtype})"

    # ---------------------------------------------------------------- products
    def __matmul__(self, other: Tensor | FactoredMatrix) -> FactoredMatrix:
        if isinstance(other, FactoredMatrix):
            return _product(self, other)
        if not isinstance(other, Tensor):
            return NotImplemented
        _check_matrix_operand(other, "right")
        if other.shape[-2] != self.rdim:
            raise InputError(
                f"cannot multiply FactoredMatrix {tuple(self.shape)} by {tuple(other.shape)}: "
                f"{self.rdim} columns vs {other.shape[-2]} rows"
            )
        # Keep the smaller inner dim: (A)(B X) has inner r, (AB)(X) has inner n.
        if self.mdim <= self.rdim:
            return FactoredMatrix(self.A, self.B @ other)
        return FactoredMatrix(self.AB, other)

    def __rmatmul__(self, other: Tensor) -> FactoredMatrix:
        if not isinstance(other, Tensor):
            return NotImplemented
        _check_matrix_operand(other, "left")
        if other.shape[-1] != self.ldim:
            raise InputError(
                f"cannot multiply {tuple(other.shape)} by FactoredMatrix {tuple(self.shape)}: "
                f"{other.shape[-1]} columns vs {self.ldim} rows"
            )
        if self.mdim <= self.ldim:
            return FactoredMatrix(other @ self.A, self.B)
        return FactoredMatrix(other, self.AB)

    def mv(self, v: Tensor) -> Tensor:
        """(A @ B) @ v for a vector (or batch of vectors) v [..., n], without forming A @ B."""
        return (self.A @ (self.B @ v.unsqueeze(-1))).squeeze(-1)

    def vm(self, v: Tensor) -> Tensor:
        """v @ (A @ B) for a vector (or batch of vectors) v [..., m], without forming A @ B."""
        return ((v.unsqueeze(-2) @ self.A) @ self.B).squeeze(-2)

    def __mul__(self, scalar: float) -> FactoredMatrix:
        if not isinstance(scalar, int | float):
            return NotImplemented
        return FactoredMatrix(self.A * scalar, self.B)

    __rmul__ = __mul__

    # ---------------------------------------------------------------- spectra
    def svd(self) -> FactoredSVD:
        """Thin SVD from the factors: QR of A and of B^T, then the SVD of the small core R_A R_B^T."""
        Qa, Ra = torch.linalg.qr(self.A)  # [.., m, ka], [.., ka, r]
        Qb, Rb = torch.linalg.qr(self.B.mT)  # [.., n, kb], [.., kb, r]
        Uc, S, Vhc = torch.linalg.svd(Ra @ Rb.mT, full_matrices=False)
        return FactoredSVD(Qa @ Uc, S, Vhc @ Qb.mT)

    @property
    def S(self) -> Tensor:
        """Singular values, [..., min(m, r, n)], descending."""
        return self.svd().S

    def norm(self) -> Tensor:
        """Frobenius norm per batch element: sqrt(tr((A^T A)(B B^T))), only r x r Gram matrices."""
        gram_a = self.A.mT @ self.A
        gram_b = self.B @ self.B.mT
        sq = (gram_a * gram_b).sum(dim=(-2, -1))
        return torch.sqrt(torch.clamp(sq, min=0))

    @property
    def eigenvalues(self) -> Tensor:
        """All n eigenvalues of the square A @ B (complex, by descending magnitude).

        Cyclic permutation: A @ B and B @ A share their nonzero eigenvalues, so only the r x r
        matrix B @ A is decomposed; the rest of the spectrum is zeros (padded when r < n; when
        r > n the r - n smallest-magnitude eigenvalues of B @ A are the surplus zeros, dropped).
        """
        self._require_square("eigenvalues")
        n = self.rdim
        ev = torch.linalg.eigvals(self.B @ self.A)
        ev = _sort_by_magnitude(ev)
        if self.mdim > n:
            return ev[..., :n]
        pad = torch.zeros(*ev.shape[:-1], n - self.mdim, dtype=ev.dtype, device=ev.device)
        return torch.cat([ev, pad], dim=-1)

    @property
    def rank(self) -> Tensor:
        """Numerical rank per batch element (int64, batch shape), numpy's default tolerance."""
        S = self.S
        if S.shape[-1] == 0:
            return torch.zeros(self.batch_shape, dtype=torch.int64, device=self.device)
        eps = torch.finfo(S.dtype).eps
        tol = S[..., :1] * max(self.ldim, self.rdim) * eps
        return (tol < S).sum(dim=-1)

    def collapse_l(self) -> Tensor:
        """S Vh [..., k, n]: the product with its left orthogonal factor U removed (AB = U @ this)."""
        _, S, Vh = self.svd()
        return S[..., :, None] * Vh

    def collapse_r(self) -> Tensor:
        """U S [..., m, k]: the product with its right orthogonal factor Vh removed (AB = this @ Vh)."""
        U, S, _ = self.svd()
        return U * S[..., None, :]

    def thin(self) -> FactoredMatrix:
        """The same matrix with inner dim k = min(m, r, n): factors U S and Vh."""
        U, S, Vh = self.svd()
        return FactoredMatrix(U * S[..., None, :], Vh)

    # ---------------------------------------------------------------- slicing
    def __getitem__(self, idx: Index | tuple[Index, ...]) -> FactoredMatrix:
        """Index the batch dims only (e.g. fm[layer, head]); use .rows()/.cols() for the matrix."""
        items = idx if isinstance(idx, tuple) else (idx,)
        if len(items) > len(self.batch_shape) or any(i is Ellipsis or i is None for i in items):
            raise InputError(
                f"FactoredMatrix indexing selects batch dims only (it has {len(self.batch_shape)}); "
                "use .rows(idx) / .cols(idx) to slice the matrix dims"
            )
        return FactoredMatrix(self.A[items], self.B[items])

    def rows(self, idx: Index) -> FactoredMatrix:
        """Rows idx of A @ B (gathers rows of A); an int keeps a 1-row matrix."""
        return FactoredMatrix(self.A[..., _as_index(idx), :], self.B)

    def cols(self, idx: Index) -> FactoredMatrix:
        """Columns idx of A @ B (gathers columns of B); an int keeps a 1-column matrix."""
        return FactoredMatrix(self.A, self.B[..., :, _as_index(idx)])

    # ---------------------------------------------------------------- helpers
    def _require_square(self, what: str) -> None:
        if self.ldim != self.rdim:
            raise InputError(
                f"FactoredMatrix.{what} needs a square matrix, got {self.ldim} x {self.rdim}"
            )


def _product(left: FactoredMatrix, right: FactoredMatrix) -> FactoredMatrix:
    """A1 B1 A2 B2 with the smallest inner dim among r1, r2 and the shared dim n1 = m2."""
    if left.rdim != right.ldim:
        raise InputError(
            f"cannot multiply FactoredMatrix {tuple(left.shape)} by {tuple(right.shape)}: "
            f"{left.rdim} columns vs {right.ldim} rows"
        )
    r1, r2, n1 = left.mdim, right.mdim, left.rdim
    if n1 < min(r1, r2):
        return FactoredMatrix(left.AB, right.AB)
    core = left.B @ right.A  # [.., r1, r2]
    if r1 <= r2:
        return FactoredMatrix(left.A, core @ right.B)
    return FactoredMatrix(left.A @ core, right.B)


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Numpy-style broadcast of two batch shapes."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        raise InputError(
            f"FactoredMatrix batch dims do not broadcast: A {a} vs B {b}; "
            "give both factors compatible leading dims"
        )
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))


def _check_matrix_operand(other: Tensor, side: str) -> None:
    if other.ndim < 2:
        method = "mv" if side == "right" else "vm"
        raise InputError(
            f"FactoredMatrix @ needs a matrix on the {side}, got shape {tuple(other.shape)}; "
            f"use fm.{method}(v) for a vector"
        )


def _as_index(idx: Index) -> slice | list[int] | Tensor:
    if isinstance(idx, int):
        return [idx]
    if isinstance(idx, slice | Tensor):
        return idx
    return list(idx)


def _sort_by_magnitude(ev: Tensor) -> Tensor:
    order = torch.argsort(ev.abs(), dim=-1, descending=True, stable=True)
    return torch.gather(ev, -1, order)

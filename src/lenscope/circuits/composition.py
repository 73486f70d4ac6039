"""Head composition scores and copying scores, read from the weights alone.

Composition (TransformerLens' `all_composition_scores`): for an earlier head e and a later head l,

    Q: ||W_OV^e W_QK^l||_F   / (||W_OV^e||_F ||W_QK^l||_F)   (e writes what l's query reads)
    K: ||W_OV^e W_QK^lT||_F  / (||W_OV^e||_F ||W_QK^l||_F)   (e writes what l's key reads)
    V: ||W_OV^e W_OV^l||_F   / (||W_OV^e||_F ||W_OV^l||_F)   (e writes what l's value reads)

with W_OV = W_V W_O and W_QK = W_Q W_K^T (row-vector convention: x W_OV is what a head writes).
All products stay factored (rank d_head), so the score costs O(d_head^2 d_model) per pair.
`baseline` is the mean score of random Gaussian matrices of the same shapes and ranks: scores
well above it indicate composition.

Copying score of a head: sum(Re lambda) / sum(|lambda|) over the eigenvalues of its full OV
circuit W_E W_OV W_U; +1 means every token boosts itself, computed on the d_head x d_head side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lenscope.circuits.folding import CircuitWeights
from lenscope.circuits.tables import head_id
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.model.factored import FactoredMatrix

Mode = Literal["Q", "K", "V"]
MODES: tuple[Mode, ...] = ("Q", "K", "V")


@dataclass(frozen=True)
class HeadPair(JsonResult):
    source: str  # earlier head, "L0.H2"
    target: str  # later head
    score: float


@dataclass(frozen=True, eq=False)
class CompositionScores(JsonResult):
    """scores[l1, h1, l2, h2]: how much head (l1, h1) feeds head (l2, h2); NaN unless l1 < l2."""

    mode: str
    scores: Tensor
    baseline: float

    def score(self, source: tuple[int, int], target: tuple[int, int]) -> float:
        return float(self.scores[source[0], source[1], target[0], target[1]])

    def pairs(self) -> list[HeadPair]:
        """Every (earlier, later) pair, highest score first."""
        L, H = self.scores.shape[:2]
        out = [
            HeadPair(head_id(l1, h1), head_id(l2, h2), float(self.scores[l1, h1, l2, h2]))
            for l1 in range(L)
            for h1 in range(H)
            for l2 in range(l1 + 1, L)
            for h2 in range(H)
        ]
        return sorted(out, key=lambda p: -p.score)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "baseline": self.baseline,
            "pairs": [vars(p) for p in self.pairs()],
        }


def composition_scores(cw: CircuitWeights, mode: Mode) -> CompositionScores:
    """Q-, K- or V-composition scores for every pair of heads in different layers."""
    if mode not in MODES:
        raise InputError(f"composition mode must be one of Q, K, V; got {mode!r}")
    left = cw.OV
    right = {"Q": cw.QK, "K": cw.QK.T, "V": cw.OV}[mode]
    scores = factored_composition(left, right)
    L = cw.n_layers
    layer = torch.arange(L, device=scores.device)
    valid = layer[:, None] < layer[None, :]  # [L1, L2]
    scores = scores.masked_fill(~valid[:, None, :, None], float("nan"))
    d, dh = int(cw.W_Q.shape[2]), int(cw.W_Q.shape[3])
    return CompositionScores(mode, scores, random_baseline(d, dh))


def factored_composition(left: FactoredMatrix, right: FactoredMatrix, chunk: int = 16) -> Tensor:
    """||L_i R_j||_F / (||L_i||_F ||R_j||_F) for batches left [*a, m, n] and right [*b, n, p].

    With L = A B and R = C D, QR factorisations A = Q_A R_A and D^T = Q_D R_D (orthonormal Q)
    give ||A B C D|| = ||X Y|| with X = R_A B [r, n] and Y = C R_D^T [n, r'], so every pair costs
    one r x n x r' product and no d_model x d_model (or batch x batch x d_model) tensor is
    formed; `chunk` rows of `left` are scored at a time. Returns [*a, *b].
    """
    if left.rdim != right.ldim:
        raise InputError(
            f"composition needs left columns == right rows, got {tuple(left.shape)} and "
            f"{tuple(right.shape)}"
        )
    X = torch.linalg.qr(left.A, mode="r")[1] @ left.B  # [*a, r, n]
    Y = right.A @ torch.linalg.qr(right.B.mT, mode="r")[1].mT  # [*b, n, r']
    a_shape, b_shape = X.shape[:-2], Y.shape[:-2]
    X = X.reshape(-1, *X.shape[-2:])
    Y = Y.reshape(-1, *Y.shape[-2:])
    x_norm = torch.linalg.matrix_norm(X)  # = ||A B||_F
    y_norm = torch.linalg.matrix_norm(Y)
    rows = []
    for start in range(0, X.shape[0], chunk):
        prod = torch.einsum("aik,bkj->abij", X[start : start + chunk], Y)
        rows.append(torch.linalg.matrix_norm(prod))
    num = torch.cat(rows, dim=0) if rows else X.new_zeros(0, Y.shape[0])
    den = x_norm[:, None] * y_norm[None, :]
    scores: Tensor = num / den.clamp(min=torch.finfo(den.dtype).tiny)
    return scores.reshape(*a_shape, *b_shape)


@functools.lru_cache(maxsize=16)
def random_baseline(d_model: int, d_head: int, samples: int = 64, seed: int = 0) -> float:
    """Mean composition score of random rank-d_head matrices W1 W2 (Gaussian factors)."""
    g = torch.Generator().manual_seed(seed)

    def rand() -> FactoredMatrix:
        a = torch.randn(samples, d_model, d_head, generator=g, dtype=torch.float64, device="cpu")
        b = torch.randn(samples, d_head, d_model, generator=g, dtype=torch.float64, device="cpu")
        return FactoredMatrix(a, b)

    left, right = rand(), rand()
    scores = (left @ right).norm() / (left.norm() * right.norm())  # paired, not all pairs
    return float(scores.mean())


@dataclass(frozen=True, eq=False)
class CopyingScores(JsonResult):
    """scores[l, h] = sum Re(lambda) / sum |lambda| of the head's full OV circuit."""

    scores: Tensor

    def of(self, layer: int, head: int) -> float:
        return float(self.scores[layer, head])

    def to_json(self) -> dict[str, Any]:
        L, H = self.scores.shape
        return {head_id(lay, h): float(self.scores[lay, h]) for lay in range(L) for h in range(H)}


def copying_scores(cw: CircuitWeights) -> CopyingScores:
    """Copying score of every head from the eigenvalues of W_E W_OV W_U (small side only)."""
    # W_E W_V W_O W_U and its cyclic permutation W_O (W_U W_E) W_V share their nonzero
    # eigenvalues; the latter is d_head x d_head and W_U W_E is formed once (d_model x d_model).
    # Scale-free: frozen norm scales would multiply every eigenvalue alike, so none are applied.
    UE = cw.W_U @ cw.W_E
    eig = torch.linalg.eigvals(cw.W_O @ UE @ cw.W_V)  # [L, H, d_head]
    num = eig.real.sum(-1)
    den = eig.abs().sum(-1)
    return CopyingScores(num / den.clamp(min=torch.finfo(den.dtype).tiny))

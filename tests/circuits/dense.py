"""Brute-force reference: a model's folded weights as dense float64 numpy arrays, built from the
raw parameters with explicit matrices (diag(w), the centring projector I - 11^T/d)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from lenscope import HookedTransformer


@dataclass
class Dense:
    E: np.ndarray  # [V, d] centred for LN
    P: np.ndarray | None
    WQ: np.ndarray  # [L, H, d, dh] with ln1 weight folded, then centred along d for LN
    WK: np.ndarray
    WV: np.ndarray
    WO: np.ndarray  # [L, H, dh, d] centred for LN
    WU: np.ndarray  # [d, V] with ln_final weight folded, then centred along d for LN
    bU: np.ndarray  # [V] with ln_final bias folded
    dh: int


def dense(model: HookedTransformer) -> Dense:
    cfg = model.cfg
    d = cfg.d_model

    def a(t: object) -> np.ndarray:
        return np.asarray(t.detach().double().numpy())  # type: ignore[attr-defined]

    E, WU = a(model.W_E), a(model.W_U)
    P = None if model.W_pos is None else a(model.W_pos)
    WQ, WK, WV, WO = a(model.W_Q), a(model.W_K), a(model.W_V), a(model.W_O)
    bU = np.zeros(cfg.d_vocab) if model.b_U is None else a(model.b_U)
    if cfg.normalization != "none":
        for layer in range(cfg.n_layers):
            D = np.diag(a(cast(Any, model.blocks[layer]).ln1.w))
            for h in range(cfg.n_heads):
                WQ[layer, h] = D @ WQ[layer, h]
                WK[layer, h] = D @ WK[layer, h]
                WV[layer, h] = D @ WV[layer, h]
        wf = a(model.ln_final.w)
        if model.ln_final.b is not None:
            bU = bU + a(model.ln_final.b) @ WU
        WU = np.diag(wf) @ WU
    if cfg.normalization == "LN":
        C = np.eye(d) - np.ones((d, d)) / d
        E = E @ C
        P = None if P is None else P @ C
        WO = WO @ C
        WQ, WK, WV = C @ WQ, C @ WK, C @ WV  # readers centred too, as TransformerLens' fold_ln
        WU = C @ WU
    return Dense(E, P, WQ, WK, WV, WO, WU, bU, cfg.d_head)


def comp_score(left: np.ndarray, right: np.ndarray) -> float:
    return float(np.linalg.norm(left @ right) / (np.linalg.norm(left) * np.linalg.norm(right)))

"""Ablation sparsity (the TopK paper's measure of how concentrated a latent's effect is).

For a sampled (sequence, position p, active latent i) we remove that latent's contribution at p
only (the activation becomes x_p - z_i * W_dec[i], i.e. the spliced SAE with its error term kept
and latent i zeroed) and take the change of the logits at positions p .. p + window - 1. Each
position's change has its median over the vocabulary subtracted (logits are shift-invariant),
and the flattened vector v of length n gets the score (|v|_1 / |v|_2)^2 / n in (0, 1]:
1/n when a single logit moves, 1 when all move alike. Lower is sparser. The baseline does the
same for zeroing one coordinate of the activation (a basis channel) at the same places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lenscope.jsonable import JsonResult
from lenscope.model import HookedTransformer
from lenscope.model.capture import capture
from lenscope.sae.model import SparseAutoencoder


@dataclass
class AblationSparsity(JsonResult):
    n_ablations: int
    window: int  # positions measured after (and including) the ablated one
    latents: float  # mean score when ablating single active latents (lower = sparser)
    channels: float  # mean score when zeroing single activation coordinates (baseline)


def effect_sparsity(delta: Tensor) -> float:
    """(|v|_1 / |v|_2)^2 / n of logit changes [positions, vocab] after median-centring."""
    v = delta.double()
    v = (v - v.median(dim=-1, keepdim=True).values).flatten()
    l2 = float(v.norm())
    if l2 == 0:
        return float("nan")
    return (float(v.abs().sum()) / l2) ** 2 / v.numel()


def _add_at(delta: Tensor, pos: Tensor) -> Any:
    """A hook adding delta[r] to row r's activation at position pos[r]."""

    def fn(x: Tensor, _hook: Any) -> Tensor:
        x = x.clone()
        flat = x.view(*x.shape[:2], -1)
        rows = torch.arange(x.shape[0], device=x.device)
        flat[rows, pos] += delta.to(x.dtype)
        return x

    return fn


@torch.no_grad()
def ablation_sparsity(
    model: HookedTransformer,
    sae: SparseAutoencoder,
    tokens: Tensor,
    *,
    n: int = 32,
    window: int = 16,
    seed: int = 0,
) -> AblationSparsity:
    """Mean ablation-effect sparsity of `n` single-latent ablations in windows `tokens` [b, ctx]."""
    hook = sae.cfg.hook_name
    acts = capture(model, tokens, hook).to(sae.W_enc.dtype)  # [b, ctx, d]
    b, ctx, d = acts.shape
    rng = np.random.default_rng(seed)
    seqs = torch.from_numpy(rng.integers(0, b, n))
    pos = torch.from_numpy(rng.integers(0, max(1, ctx - 1), n))
    x = acts[seqs, pos]  # [n, d]
    codes, stats = sae.encode_codes(x)
    dense = codes.dense()
    lat_delta = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    keep = torch.zeros(n, dtype=torch.bool, device="cpu")
    for r in range(n):
        on = (dense[r] > 0).nonzero().flatten()
        if on.numel():
            i = int(on[int(rng.integers(0, on.numel()))])
            contrib = dense[r, i] * sae.W_dec[i]
            if stats is not None:
                contrib = contrib * stats.std[r]
            lat_delta[r] = -contrib
            keep[r] = True
    chan = torch.from_numpy(rng.integers(0, d, n)).to(x.device)
    chan_delta = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    rows_n = torch.arange(n, device=x.device)
    chan_delta[rows_n, chan] = -x[rows_n, chan]
    rows = tokens[seqs]
    clean = model(rows)
    scores: dict[str, list[float]] = {"lat": [], "chan": []}
    for key, delta in (("lat", lat_delta), ("chan", chan_delta)):
        out = model.run_with_hooks(rows, fwd_hooks=[(hook, _add_at(delta, pos.to(rows.device)))])
        for r in range(n):
            if key == "lat" and not bool(keep[r]):
                continue
            p = int(pos[r])
            s = effect_sparsity((out[r, p : p + window] - clean[r, p : p + window]).cpu())
            if s == s:  # not NaN
                scores[key].append(s)
    return AblationSparsity(
        n_ablations=len(scores["lat"]),
        window=window,
        latents=float(np.mean(scores["lat"])) if scores["lat"] else float("nan"),
        channels=float(np.mean(scores["chan"])) if scores["chan"] else float("nan"),
    )

"""Feature absorption on code's own hierarchy, and targeted probe perturbation (TPP).

Absorption (SAEBench's, after Chanin et al.): a parent concept, "the token is a keyword", sits
over children, the individual keywords. A logistic probe for the parent is fitted on the
activation the dictionary writes (y: for an SAE its hook, for a transcoder the MLP's output); p is
its unit direction in raw activation space. The main latents are the parent's sparse-probing
latents: the best one by mean difference, then the next while the k-sparse probe's held-out F1
rises by more than 0.03 (SAEBench's feature-splitting threshold), up to 5. On every held-out
keyword token the full probe gets right, with P = y . p and each latent's projection
s_j = f_j * scale * (W_dec[j] . p) (its write's share of P):

    absorption_fraction  0 when the main latents' projection M >= P or the top 3 other latents
                         with cos(W_dec[j], p) >= 0.1 and s_j > 0 project less than 0.4 P;
                         1 when M <= 0; else min(A, P - M) / (min(A, P - M) + M), A their sum
    full absorption      no main latent fires, the top projecting latent has cos >= 0.025 and
                         projects at least 0.4 P

Reported: the mean fraction, the full-absorption rate, and per keyword its count and mean fraction.

TPP (SAEBench's targeted probe perturbation) on the token-kind partition: one probe per kind
(keyword, name, string, number, comment, operator: mutually exclusive, one against the rest) on y.
For kind i, its top-k latents by mean difference are ablated (their write subtracted from y,
the error term kept) and every kind's probe is scored again on its held-out tokens:
tpp = mean_i (drop of probe i) - mean_{i != j} (drop of probe j when ablating i's latents).
Only the kind partition is used: the other labels overlap (in_string and kind:string, indent and
in_def), and for overlapping classes a drop off the diagonal is the labels' overlap, not the
dictionary's entanglement.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from lenscope.bench.probe import Probe, fit_logistic, top_k_mean_diff
from lenscope.bench.probing import balanced_split
from lenscope.data.code_labels import KIND, KINDS
from lenscope.jsonable import JsonResult
from lenscope.sae.dictionary import Dictionary

SPLIT_GAIN = 0.03
MAX_MAIN = 5
COS_FULL, COS_FRACTION, PROJ_SHARE, MAX_ABSORBERS = 0.025, 0.1, 0.4, 3


@dataclass
class AbsorptionResult(JsonResult):
    parent: str
    main_latents: list[int]
    n_tokens: int  # held-out parent tokens the full probe got right
    mean_absorption_fraction: float
    full_absorption_rate: float
    by_child: dict[str, list[float]] = field(default_factory=dict)  # child -> [count, mean frac]


@dataclass
class TPPResult(JsonResult):
    k: int
    classes: list[str]
    drops: list[list[float]]  # [ablated class i][probe j]: accuracy drop
    tpp: float


def probe_direction(probe: Probe) -> Tensor:
    """The unit direction in raw activation space of a probe fitted on standardised features."""
    w: Tensor = probe.w / probe.std
    return w / w.norm()  # type: ignore[no-any-return]


def _f1(probe: Probe, x: Tensor, y: Tensor) -> float:
    pred = probe.logits(x) > 0
    t = y.bool()
    tp = float((pred & t).sum())
    denom = float(pred.sum() + t.sum())
    return 2 * tp / denom if denom else 0.0


def main_latents(lat_tr: Tensor, y_tr: Tensor, lat_te: Tensor, y_te: Tensor) -> list[int]:
    """The parent's latents: the best by mean difference, then more while held-out F1 of the
    k-sparse probe rises by more than SPLIT_GAIN."""
    order = top_k_mean_diff(lat_tr, y_tr, min(MAX_MAIN, lat_tr.shape[1])).tolist()
    chosen = order[:1]
    best = _f1(fit_logistic(lat_tr[:, chosen], y_tr), lat_te[:, chosen], y_te)
    for j in order[1:]:
        cand = [*chosen, j]
        f1 = _f1(fit_logistic(lat_tr[:, cand], y_tr), lat_te[:, cand], y_te)
        if f1 - best <= SPLIT_GAIN:
            break
        chosen, best = cand, f1
    return [int(j) for j in chosen]


def absorption_fraction(
    proj: float, s: Tensor, cos: Tensor, main: list[int], fires: Tensor
) -> tuple[float, bool]:
    """(absorption fraction, full absorption) of one token: probe projection `proj`, latent
    projections `s` [d_sae], decoder cosines with the probe `cos` [d_sae], `fires` [d_sae]."""
    m = float(s[main].sum())
    others = torch.ones_like(s, dtype=torch.bool)
    others[main] = False
    cand = s[others & (cos >= COS_FRACTION) & (s > 0)]
    a = float(cand.topk(min(MAX_ABSORBERS, cand.numel())).values.sum()) if cand.numel() else 0.0
    if m >= proj or a < PROJ_SHARE * proj:
        frac = 0.0
    elif m <= 0:
        frac = 1.0
    else:
        ab = min(a, proj - m)
        frac = float(np.clip(ab / (ab + m), 0.0, 1.0))
    top = int(s.argmax())
    full = (
        not bool(fires[main].any())
        and float(cos[top]) >= COS_FULL
        and proj >= 0
        and float(s[top]) >= PROJ_SHARE * proj
    )
    return frac, full


def keyword_absorption(
    dic: Dictionary,
    x: Tensor,
    y_act: Tensor,
    latents: Tensor,
    kind: npt.NDArray[np.int16],
    token_text: list[str],
    *,
    per_class: int = 1000,
    min_per_class: int = 20,
    seed: int = 0,
) -> AbsorptionResult | None:
    """Absorption of "is a keyword" by latents of single keywords (see the module); `x` the
    dictionary's input rows (for its input scaling), `y_act` the rows it writes, `kind` each
    row's token kind, `token_text` each row's token. None when there are fewer than
    `min_per_class` keyword or other tokens."""
    labels = np.where(kind >= 0, (kind == KIND["keyword"]).astype(np.int8), np.int8(-1))
    if min(int((labels == 1).sum()), int((labels == 0).sum())) < min_per_class:
        return None
    sp = balanced_split(labels.astype(np.int8), per_class, seed)
    yt = torch.from_numpy(labels.astype(np.int64))
    probe = fit_logistic(y_act[sp.train], yt[sp.train])
    main = main_latents(latents[sp.train], yt[sp.train], latents[sp.test], yt[sp.test])
    p = probe_direction(probe)
    dec = dic.decoders[0].detach().double().cpu()
    along = dec @ p  # [d_sae]: each decoder row's component along p
    cos = along / dec.norm(dim=1).clamp_min(1e-12)
    scale = dic.write_scale(x).double().reshape(-1)
    right = probe.logits(y_act[sp.test]) > 0
    rows = [int(r) for r, ok in zip(sp.test.tolist(), right.tolist(), strict=True) if ok]
    rows = [r for r in rows if labels[r] == 1]
    fracs: list[float] = []
    full = 0
    child: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        f = latents[r].double()
        s = f * scale[r] * along
        frac, is_full = absorption_fraction(float(y_act[r].double() @ p), s, cos, main, f != 0)
        fracs.append(frac)
        full += int(is_full)
        child[token_text[r].strip()].append(frac)
    return AbsorptionResult(
        "keyword",
        main,
        len(rows),
        float(np.mean(fracs)) if fracs else float("nan"),
        full / len(rows) if rows else float("nan"),
        {c: [float(len(v)), float(np.mean(v))] for c, v in sorted(child.items())},
    )


def kind_tpp(
    dic: Dictionary,
    x: Tensor,
    y_act: Tensor,
    latents: Tensor,
    kind: npt.NDArray[np.int16],
    *,
    k: int = 10,
    per_class: int = 1000,
    min_per_class: int = 20,
    seed: int = 0,
) -> TPPResult | None:
    """Targeted probe perturbation over the token kinds present (see the module); None when
    fewer than two kinds have `min_per_class` tokens."""
    k = min(k, latents.shape[1])
    hook = dic.hooks_out[0]
    classes, probes, splits, ablate = [], [], [], []
    for name in KINDS[1:]:
        lab = np.where(kind >= 0, (kind == KIND[name]).astype(np.int8), np.int8(-1))
        if min(int((lab == 1).sum()), int((lab == 0).sum())) < min_per_class:
            continue
        sp = balanced_split(lab.astype(np.int8), per_class, seed)
        yt = torch.from_numpy(lab.astype(np.int64))
        classes.append(name)
        probes.append((fit_logistic(y_act[sp.train], yt[sp.train]), yt))
        splits.append(sp)
        ablate.append(top_k_mean_diff(latents[sp.train], yt[sp.train], k))
    if len(classes) < 2:
        return None
    drops = []
    for i in range(len(classes)):
        keep = torch.zeros(latents.shape[1])
        keep[ablate[i]] = 1.0
        row = []
        for (probe, yt), sp in zip(probes, splits, strict=True):
            te = sp.test
            clean = probe.accuracy(y_act[te], yt[te])
            removed = dic.write(latents[te] * keep, x[te], hook).to(y_act.dtype)
            row.append(clean - probe.accuracy(y_act[te] - removed, yt[te]))
        drops.append(row)
    n = len(classes)
    diag = float(np.mean([drops[i][i] for i in range(n)]))
    off = float(np.mean([drops[i][j] for i in range(n) for j in range(n) if i != j]))
    return TPPResult(k, classes, drops, diag - off)

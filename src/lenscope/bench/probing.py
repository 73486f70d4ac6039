"""Sparse probing on code labels (SAEBench's sparse probing, on tokens instead of sequences).

For each binary task (`codeset.binary_tasks`) with enough tokens of each class: as many negative
as positive tokens are drawn (at most `per_class` each), 80% train and 20% test. A logistic probe
on the full activation the dictionary reads (x at hook_in) is the reference; for each k, the k
latents with the largest |mean over positives - mean over negatives| on the training split are
chosen and a logistic probe on those k latents alone is fitted. Figures are held-out accuracies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from lenscope.bench.probe import check_binary, fit_logistic, top_k_mean_diff
from lenscope.errors import InputError
from lenscope.jsonable import JsonResult


@dataclass
class ProbeTask(JsonResult):
    task: str
    n_train: int
    n_test: int
    full_accuracy: float
    sparse_accuracy: dict[str, float]  # str(k) -> held-out accuracy
    latents: dict[str, list[int]]  # str(k) -> the chosen latents


@dataclass
class ProbingResult(JsonResult):
    ks: list[int]
    tasks: list[ProbeTask]
    mean_full_accuracy: float
    mean_sparse_accuracy: dict[str, float]
    skipped: list[str] = field(default_factory=list)  # tasks with too few tokens of a class


@dataclass
class ProbeSplit:
    train: Tensor  # row indices
    test: Tensor


def balanced_split(
    y: npt.NDArray[np.int8], per_class: int, seed: int, test_fraction: float = 0.2
) -> ProbeSplit:
    """Equal numbers of positive and negative rows (y = 1 / 0; -1 ignored), shuffled, split."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n = min(len(pos), len(neg), per_class)
    pick = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    rng.shuffle(pick)
    cut = len(pick) - max(1, round(test_fraction * len(pick)))
    return ProbeSplit(torch.from_numpy(pick[:cut]), torch.from_numpy(pick[cut:]))


def check_ks(ks: Sequence[int], d_sae: int) -> list[int]:
    if not ks:
        raise InputError("sparse probing needs at least one k")
    for k in ks:
        if not 1 <= k <= d_sae:
            raise InputError(f"k = {k} is larger than the dictionary's {d_sae} latents")
    return sorted(set(ks))


def probe_task(
    name: str,
    acts: Tensor,
    latents: Tensor,
    y: npt.NDArray[np.int8],
    ks: Sequence[int],
    *,
    per_class: int = 2000,
    seed: int = 0,
) -> ProbeTask:
    """One task: a probe on `acts` [n, d] and probes on the top-k of `latents` [n, d_sae]."""
    ks = check_ks(ks, latents.shape[1])
    defined = y >= 0
    check_binary(torch.from_numpy(y[defined].astype(np.int64)), f"the label {name}")
    sp = balanced_split(y, per_class, seed)
    yt = torch.from_numpy(y.astype(np.int64))
    y_tr, y_te = yt[sp.train], yt[sp.test]
    full = fit_logistic(acts[sp.train], y_tr).accuracy(acts[sp.test], y_te)
    acc: dict[str, float] = {}
    chosen: dict[str, list[int]] = {}
    lat_tr = latents[sp.train]
    for k in ks:
        idx = top_k_mean_diff(lat_tr, y_tr, k)
        probe = fit_logistic(lat_tr[:, idx], y_tr)
        acc[str(k)] = probe.accuracy(latents[sp.test][:, idx], y_te)
        chosen[str(k)] = [int(i) for i in idx]
    return ProbeTask(name, len(sp.train), len(sp.test), full, acc, chosen)


def sparse_probing(
    acts: Tensor,
    latents: Tensor,
    tasks: dict[str, npt.NDArray[np.int8]],
    ks: Sequence[int] = (1, 2, 5),
    *,
    per_class: int = 2000,
    min_per_class: int = 20,
    seed: int = 0,
    tick: Callable[[], None] | None = None,
) -> ProbingResult:
    """Every task of `tasks` (flattened per token, aligned with the rows of `acts`/`latents`)
    with at least `min_per_class` tokens of each class; the others are listed as skipped."""
    ks = check_ks(ks, latents.shape[1])
    if not tasks:
        raise InputError("sparse probing needs at least one labelled task")
    done: list[ProbeTask] = []
    skipped: list[str] = []
    for i, (name, y) in enumerate(sorted(tasks.items())):
        if min(int((y == 1).sum()), int((y == 0).sum())) < min_per_class:
            skipped.append(name)
        else:
            done.append(probe_task(name, acts, latents, y, ks, per_class=per_class, seed=seed + i))
        if tick is not None:
            tick()
    if not done:
        raise InputError(
            f"no code label has {min_per_class} tokens of each class; give more tokens"
        )
    return ProbingResult(
        ks=list(ks),
        tasks=done,
        mean_full_accuracy=float(np.mean([t.full_accuracy for t in done])),
        mean_sparse_accuracy={
            str(k): float(np.mean([t.sparse_accuracy[str(k)] for t in done])) for k in ks
        },
        skipped=skipped,
    )

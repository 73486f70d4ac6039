"""Faithfulness: how much of the task the circuit alone does, against how many edges it keeps.

The circuit alone is the model with every edge outside it ablated; its metric as a fraction of
the full model's is normalised by the metric with every edge ablated:

    fraction = (metric(circuit) - metric(nothing)) / (metric(full) - metric(nothing))

so 1 is the full model and 0 is the model with nothing kept, under the same ablation (figures
swing with the ablation, Miller et al. 2024: every result names it). The curve keeps the top n
edges by |score| for n on a grid from 0 to every edge; its area is the mean fraction over the
share of edges kept (trapezoids on [0, 1]); `n80` / `n90` are the smallest n whose fraction
reaches 0.8 / 0.9, found on the grid and then by bisection between the bracketing grid points.
Completeness is the fraction left with the circuit knocked out (its edges ablated, the rest
kept): near 0 when the circuit holds all of the task.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lenscope.discover.context import DiscoveryContext

Progress = Callable[[int, int], None]


def grid(n_edges: int, points: int = 40) -> list[int]:
    """Edge counts to evaluate: every count for small graphs, else 0, log-spaced, n_edges."""
    if n_edges + 1 <= points:
        return list(range(n_edges + 1))
    geo = np.geomspace(1, n_edges, points - 1)
    return sorted({0, n_edges, *(round(float(x)) for x in geo)})


class FaithfulnessCurve:
    """Fractions of the top-n circuits of one score vector (memoised by n)."""

    def __init__(self, ctx: DiscoveryContext, scores: Tensor) -> None:
        self.ctx = ctx
        self.order = torch.argsort(-scores.abs(), stable=True)
        self.cache: dict[int, float] = {}

    def keep(self, n: int) -> Tensor:
        keep = torch.zeros(self.order.numel(), dtype=torch.bool)
        keep[self.order[:n]] = True
        return keep

    def fraction(self, n: int) -> float:
        if n not in self.cache:
            self.cache[n] = self.ctx.fraction(self.ctx.value(self.ctx.mask_keeping(self.keep(n))))
        return self.cache[n]

    def smallest_reaching(self, level: float, counts: list[int]) -> int | None:
        prev = None
        for n in counts:
            if self.fraction(n) >= level:
                lo, hi = (prev if prev is not None else n), n
                while hi - lo > 1:  # the first crossing between two grid points
                    mid = (lo + hi) // 2
                    if self.fraction(mid) >= level:
                        hi = mid
                    else:
                        lo = mid
                return hi if self.fraction(lo) < level else lo
            prev = n
        return None


def faithfulness_curve(
    ctx: DiscoveryContext, scores: Tensor, points: int = 40, progress: Progress | None = None
) -> tuple[list[tuple[int, float]], float, int | None, int | None]:
    """(curve [(edges kept, fraction)], area, n80, n90) for the top-n circuits of `scores`."""
    c = FaithfulnessCurve(ctx, scores)
    counts = grid(scores.numel(), points)
    curve = []
    for i, n in enumerate(counts):
        curve.append((n, c.fraction(n)))
        if progress is not None:
            progress(i + 1, len(counts))
    xs = np.array([n for n, _ in curve], dtype=np.float64) / max(scores.numel(), 1)
    ys = np.array([f for _, f in curve], dtype=np.float64)
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    return curve, area, c.smallest_reaching(0.8, counts), c.smallest_reaching(0.9, counts)


def circuit_fraction(ctx: DiscoveryContext, keep: Tensor) -> float:
    """The circuit alone (`keep` [n_edges] bool), as a fraction of the full model."""
    return ctx.fraction(ctx.value(ctx.mask_keeping(keep)))


def completeness(ctx: DiscoveryContext, keep: Tensor) -> float:
    """The full model with the circuit knocked out, as a fraction of the full model."""
    return ctx.fraction(ctx.value(ctx.mask_keeping(~keep)))

"""Exact activation patching of each edge: the reference every estimate is judged against.

An edge's score is what it contributes: the metric of the full model minus the metric with that
one edge ablated (its receiver reads the upstream node's ablated output instead of its own).
Runs resume from the clean run at the receiver's layer, since nothing before it changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lenscope.discover.context import DiscoveryContext

Progress = Callable[[int, int], None]  # (done, total)


def edge_effect(ctx: DiscoveryContext, k: int) -> float:
    """full metric - metric with edge k alone ablated."""
    g = ctx.graph
    u, r = int(g.edge_up[k]), int(g.edge_recv[k])
    mask = torch.zeros(len(g.upstream), len(g.receivers), dtype=ctx.ablated.dtype)
    mask[u, r] = 1.0
    return ctx.full_value - ctx.value(mask, start_layer=g.layer_of_receiver(r))


def patch_scores(ctx: DiscoveryContext, progress: Progress | None = None) -> Tensor:
    """Every edge's exact patching effect [n_edges] (one forward per edge)."""
    n = ctx.graph.n_edges
    out = torch.empty(n, dtype=torch.float64)
    for k in range(n):
        out[k] = edge_effect(ctx, k)
        if progress is not None:
            progress(k + 1, n)
    return out

"""ACDC (Conmy et al. 2023): prune edges one at a time, from the logits backwards.

Receivers are visited in reverse order of computation (the logits, the last MLP, the last
layer's heads, ...); each of a receiver's edges, latest upstream node first, is tentatively
ablated on top of the edges already removed. If the metric gets worse by less than tau, the edge
stays removed; otherwise it is restored. "Worse" is the task metric falling (`logit_diff`,
`prob`) or, with `kl`, the KL divergence to the full model rising. A head or MLP with no
remaining edge out of it no longer matters: its input edges are removed without a test (as in
ACDC). Each edge's score is the metric's drop when it was tested (0 when skipped), and the
circuit is the edges kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lenscope.discover.context import DiscoveryContext
from lenscope.errors import InputError

Progress = Callable[[int, int], None]


def check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        raise InputError(f"--tau is a finite number >= 0; not {tau}")
    if tau < 0:
        raise InputError(
            f"--tau is the largest metric drop an edge may cause and be pruned: >= 0, not {tau}"
        )
    return float(tau)


def acdc(
    ctx: DiscoveryContext, tau: float, progress: Progress | None = None
) -> tuple[Tensor, Tensor]:
    """(scores [n_edges], kept [n_edges] bool)."""
    check_tau(tau)
    g = ctx.graph
    n_up, n_recv = len(g.upstream), len(g.receivers)
    mask = torch.zeros(n_up, n_recv, dtype=ctx.ablated.dtype)
    edge_of = -torch.ones(n_up, n_recv, dtype=torch.long)
    edge_of[g.edge_up, g.edge_recv] = torch.arange(g.n_edges)
    scores = torch.zeros(g.n_edges, dtype=torch.float64)
    current = ctx.full_value
    done = 0
    up_index = {n.node_id: i for i, n in enumerate(g.upstream)}
    for r in reversed(range(n_recv)):
        node = g.receivers[r].node
        start = g.layer_of_receiver(r)
        senders = g.valid[:, r].nonzero()[:, 0].tolist()
        u_self = up_index.get(node.node_id)
        if u_self is not None and not bool((g.valid[u_self] & (mask[u_self] == 0)).any()):
            mask[senders, r] = 1.0  # nothing reads this node any more
            done += len(senders)
            if progress is not None:
                progress(done, g.n_edges)
            continue
        for u in reversed(senders):
            mask[u, r] = 1.0
            value = ctx.value(mask, start_layer=start)
            drop = current - value
            scores[int(edge_of[u, r])] = drop
            if drop < tau:
                current = value
            else:
                mask[u, r] = 0.0
            done += 1
            if progress is not None:
                progress(done, g.n_edges)
    kept = g.from_matrix(mask) == 0
    return scores, kept

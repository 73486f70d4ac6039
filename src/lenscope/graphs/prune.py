"""Pruning by influence (circuit-tracer's definitions, computed our own way).

With `An` the adjacency with absolute values, each row scaled to sum 1, a node's influence is
`w @ (An + An^2 + ...)` where `w` holds the targets' weights: the share of the targets it
reaches over all paths. The graph is acyclic, so the series stops after at most its depth.
Nodes are kept in order of influence until `node_threshold` of the total (embeddings and targets
always); edges between kept nodes are scored by normalised weight times their target's
influence (plus its own weight) and kept until `edge_threshold`; then features and errors
without outgoing edges, and features without incoming ones, are dropped until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.graphs.result import Graph
from lenscope.graphs.targets import check_threshold


def normalized(A: Tensor) -> Tensor:
    a = A.abs()
    return a / a.sum(1, keepdim=True).clamp(min=1e-10)


def path_influence(An: Tensor, w: Tensor) -> Tensor:
    """w @ (An + An^2 + ...), summed until the acyclic graph's paths run out."""
    term = w @ An
    total = term.clone()
    for _ in range(An.shape[0]):
        if not bool(term.any()):
            break
        term = term @ An
        total += term
    return total


def node_influence(graph: Graph) -> Tensor:
    return path_influence(normalized(graph.adjacency), graph.logit_weights())


def edge_scores(A: Tensor, w: Tensor) -> Tensor:
    An = normalized(A)
    return An * (path_influence(An, w) + w)[:, None]


def cut(scores: Tensor, share: float) -> Tensor:
    """The smallest score kept when scores are kept, largest first, until `share` of their sum."""
    s = scores.sort(descending=True).values
    frac = s.cumsum(0) / s.sum()
    i = min(int(torch.searchsorted(frac, torch.tensor(share, dtype=frac.dtype))), s.numel() - 1)
    return s[i]


@dataclass
class Pruned:
    node_mask: Tensor  # [N] bool
    edge_mask: Tensor  # [N, N] bool, [target, source]
    influence: Tensor  # [N]
    cumulative: Tensor  # [N]: the share of total influence of nodes at least this influential


def prune(graph: Graph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruned:
    check_threshold(node_threshold, "the node threshold")
    check_threshold(edge_threshold, "the edge threshold")
    A, w = graph.adjacency, graph.logit_weights()
    infl = node_influence(graph)
    keep = infl >= cut(infl, node_threshold)
    always = graph.embed_slice.start
    keep[always:] = True
    A2 = A * keep[:, None] * keep[None, :]
    scores = edge_scores(A2, w)
    edges = scores >= cut(scores.flatten(), edge_threshold)
    F = graph.n_features
    while True:
        before = keep.clone()
        edges &= keep[:, None] & keep[None, :]
        keep[:always] &= edges[:, :always].any(0)  # features and errors must feed something
        keep[:F] &= edges[:F].any(1)  # features must be fed
        if bool((keep == before).all()):
            break
    edges &= keep[:, None] & keep[None, :]
    order = infl.sort(descending=True)
    cum = torch.zeros_like(infl)
    cum[order.indices] = order.values.cumsum(0) / order.values.sum().clamp(min=1e-30)
    return Pruned(keep, edges, infl, cum)

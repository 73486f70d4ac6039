"""Choosing a circuit from edge scores: the top n, a threshold, or greedily from the logits.

Edges rank by the absolute value of their score (an edge that hurts the task matters as much as
one that helps). `greedy` (Hanna et al. 2024) grows a connected circuit: starting from the
logits, it adds, n times, the best-scoring edge into a node already in the circuit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lenscope.discover.graph import EdgeGraph
from lenscope.errors import InputError


def check_n(n: int, n_edges: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= n_edges:
        raise InputError(f"--top-n is a number of edges, 1..{n_edges} for this model; not {n}")
    return n


def top_n(scores: Tensor, n: int) -> Tensor:
    """The n edges of largest |score| [n_edges] bool (ties: the earlier edge)."""
    check_n(n, scores.numel())
    order = torch.argsort(-scores.abs(), stable=True)
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[order[:n]] = True
    return keep


def threshold(scores: Tensor, t: float) -> Tensor:
    """The edges with |score| >= t."""
    if not math.isfinite(t) or t < 0:
        raise InputError(f"a score threshold is a finite number >= 0; not {t}")
    return scores.abs() >= t


def greedy(graph: EdgeGraph, scores: Tensor, n: int) -> Tensor:
    """n edges grown from the logits: each step the best |score| edge into the circuit's nodes."""
    check_n(n, scores.numel())
    in_circuit = {"logits"}
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    mag = scores.abs().tolist()
    targets = [graph.receivers[int(r)].node.node_id for r in graph.edge_recv]
    sources = [graph.upstream[int(u)].node_id for u in graph.edge_up]
    for _ in range(n):
        best, best_k = -1.0, -1
        for k, v in enumerate(mag):
            if not keep[k] and targets[k] in in_circuit and v > best:
                best, best_k = v, k
        if best_k < 0:
            break
        keep[best_k] = True
        in_circuit.add(sources[best_k])
    return keep

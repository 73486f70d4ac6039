"""Communicating classes, periods and stationary distributions of a finite Markov chain.

The chain is given sparsely, the way a tiny GPT produces it: from state s, token t leads to state
next_state[s, t] with probability probs[s, t]. An edge exists when its probability exceeds `tol`
(default 0: softmax probabilities are positive unless a logit is -inf or underflows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

ClassKind = Literal["absorbing", "recurrent", "transient"]


@dataclass(frozen=True, eq=False)
class ClassInfo:
    """One communicating class by state indices; `stationary` is aligned with `members`."""

    members: list[int]
    kind: ClassKind
    period: int | None
    stationary: np.ndarray | None


def dense_matrix(next_state: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """[S, S] transition matrix from the sparse (next_state, probs) form."""
    S = next_state.shape[0]
    P = np.zeros((S, S), dtype=np.float64)
    rows = np.repeat(np.arange(S), next_state.shape[1])
    np.add.at(P, (rows, next_state.ravel()), probs.ravel())
    return P


def adjacency(next_state: np.ndarray, probs: np.ndarray, tol: float = 0.0) -> list[list[int]]:
    """Successor lists (deduplicated, sorted) keeping edges with probability > tol."""
    return [
        sorted({int(v) for v, p in zip(ns, ps, strict=True) if p > tol})
        for ns, ps in zip(next_state, probs, strict=True)
    ]


def strongly_connected(adj: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative; components as sorted index lists, ordered by first member."""
    n = len(adj)
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    comps: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, iter(adj[root]))]
        while work:
            v, successors = work[-1]
            descended = False
            for w in successors:
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, iter(adj[w])))
                    descended = True
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return sorted(comps, key=lambda c: c[0])


def period(members: list[int], adj: list[list[int]]) -> int | None:
    """gcd of cycle lengths inside a class (None when the class has no internal edge)."""
    inside = set(members)
    level = {members[0]: 0}
    frontier = [members[0]]
    while frontier:
        nxt = []
        for u in frontier:
            for v in adj[u]:
                if v in inside and v not in level:
                    level[v] = level[u] + 1
                    nxt.append(v)
        frontier = nxt
    g = 0
    for u in members:
        for v in adj[u]:
            if v in inside:
                g = math.gcd(g, level[u] + 1 - level[v])
    return g if g > 0 else None


def class_stationary(P_class: np.ndarray) -> np.ndarray:
    """The unique stationary distribution of an irreducible (closed) class, by a linear solve.

    Solves pi (P - I) = 0 with sum(pi) = 1 (one balance equation replaced by the normalisation);
    unlike power iteration this also works for periodic classes.
    """
    k = P_class.shape[0]
    M = P_class.T - np.eye(k)
    M[-1, :] = 1.0
    b = np.zeros(k)
    b[-1] = 1.0
    pi = np.linalg.solve(M, b)
    pi = np.clip(pi, 0.0, None)
    return np.asarray(pi / pi.sum(), dtype=np.float64)


def classify(next_state: np.ndarray, probs: np.ndarray, tol: float = 0.0) -> list[ClassInfo]:
    """Communicating classes with kind, period and (for closed classes) stationary distribution."""
    adj = adjacency(next_state, probs, tol)
    P = dense_matrix(next_state, probs)
    out = []
    for members in strongly_connected(adj):
        inside = set(members)
        closed = all(v in inside for u in members for v in adj[u])
        kind: ClassKind
        if not closed:
            kind = "transient"
        elif len(members) == 1:
            kind = "absorbing"
        else:
            kind = "recurrent"
        stationary = class_stationary(P[np.ix_(members, members)]) if closed else None
        out.append(ClassInfo(members, kind, period(members, adj), stationary))
    return out

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
    keep = probs > tol
    return [np.unique(ns[k]).tolist() for ns, k in zip(next_state, keep, strict=True)]


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


def class_stationary(members: list[int], next_state: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The unique stationary distribution of a closed class, by a linear solve, aligned with members.

    Builds the class's own k x k block from the sparse form (edges leaving it, which can only have
    probability <= tol, are dropped and rows renormalised), then solves pi (P - I) = 0 with
    sum(pi) = 1 (one balance equation replaced by the normalisation); unlike power iteration this
    also works for periodic classes.
    """
    k = len(members)
    where = np.full(next_state.shape[0], -1, dtype=np.int64)
    where[members] = np.arange(k)
    targets = where[next_state[members]]  # [k, V]; -1 outside the class
    inside = targets >= 0
    rows = np.broadcast_to(np.arange(k)[:, None], targets.shape)
    P = np.zeros((k, k), dtype=np.float64)
    np.add.at(P, (rows[inside], targets[inside]), probs[members][inside])
    P /= P.sum(axis=1, keepdims=True)
    M = P.T - np.eye(k)
    M[-1, :] = 1.0
    b = np.zeros(k)
    b[-1] = 1.0
    pi = np.clip(np.linalg.solve(M, b), 0.0, None)
    return np.asarray(pi / pi.sum(), dtype=np.float64)


def classify(next_state: np.ndarray, probs: np.ndarray, tol: float = 0.0) -> list[ClassInfo]:
    """Communicating classes with kind, period and (for closed classes) stationary distribution."""
    adj = adjacency(next_state, probs, tol)
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
        stationary = class_stationary(members, next_state, probs) if closed else None
        out.append(ClassInfo(members, kind, period(members, adj), stationary))
    return out


def complete_context_classes(
    next_state: np.ndarray, probs: np.ndarray, n_short: int
) -> list[ClassInfo]:
    """Fast path for a context chain whose every edge is present (any softmax model).

    Appending tokens reaches every full-length state from every state within C steps, and the
    all-zeros context loops to itself, so the full-length states form one aperiodic closed class;
    each shorter prefix is a transient singleton (lengths only grow until C).
    """
    S = next_state.shape[0]
    full = list(range(n_short, S))
    kind: ClassKind = "absorbing" if len(full) == 1 else "recurrent"
    out = [ClassInfo([i], "transient", None, None) for i in range(n_short)]
    out.append(ClassInfo(full, kind, 1, class_stationary(full, next_state, probs)))
    return out

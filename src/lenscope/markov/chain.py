"""A tiny GPT as a finite-state Markov chain (Karpathy's baby GPT: V=2 tokens, context C=3).

`transition_matrix(model, V, C)` feeds every context to the model, reads the next-token
probabilities at the last position and builds the chain: state -> state-with-token-appended (oldest
token dropped beyond C). Only a callable mapping LongTensor [n, t] to logits [n, t, V] is needed,
so any lenscope model (or a hand-made torch module) works.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.markov.classes import ClassKind, classify, complete_context_classes, dense_matrix
from lenscope.markov.empirical import EmpiricalTransitions, empirical_transitions
from lenscope.markov.states import (
    State,
    check_size,
    enumerate_states,
    next_state_table,
    state_name,
)
from lenscope.model.transformer import HookedTransformer
from lenscope.model.view import private_view

__all__ = [
    "CommunicatingClass",
    "EmpiricalTransitions",
    "MarkovChain",
    "Model",
    "chain_from_probs",
    "empirical_transitions",
    "next_token_probs",
    "transition_matrix",
]

Model = Callable[[torch.Tensor], Any]
"""Token ids [n, t] (int64) -> logits [n, t, V] (or [n, V] for the last position only)."""


@dataclass(frozen=True)
class CommunicatingClass(JsonResult):
    """States that reach each other; `stationary` (closed classes only) is aligned with `states`."""

    states: list[str]
    kind: ClassKind
    period: int | None
    stationary: list[float] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "states": list(self.states),
            "kind": self.kind,
            "period": self.period,
            "stationary": None if self.stationary is None else list(self.stationary),
        }


@dataclass(frozen=True, eq=False)
class MarkovChain(JsonResult):
    """The chain: states, next-token probs [S, V], successor table [S, V], classes, stationary.

    `stationary` [S] is the chain's stationary distribution when it has exactly one closed class
    (it lives on full-length states; shorter prefixes are always transient), else None — then each
    closed class in `classes` carries its own.
    """

    V: int
    C: int
    include_short: bool
    states: list[str]
    next_token_probs: np.ndarray
    next_state: np.ndarray
    classes: list[CommunicatingClass]
    stationary: np.ndarray | None

    def _repr_svg_(self) -> str | None:
        """Inline in notebooks: the circo drawing (None, so the text repr shows, above
        MAX_DRAWN_STATES states or without graphviz)."""
        from lenscope.viz.markov_svg import chain_svg

        return chain_svg(self)

    @property
    def P(self) -> np.ndarray:
        """Dense transition matrix [S, S]; rows sum to 1."""
        return dense_matrix(self.next_state, self.next_token_probs)

    @property
    def closed_classes(self) -> list[CommunicatingClass]:
        return [c for c in self.classes if c.kind != "transient"]

    def index(self, state: str) -> int:
        """Position of a state name such as '101' in `states`."""
        try:
            return self.states.index(state)
        except ValueError:
            raise InputError(
                f"state {state!r} is not in this chain (V={self.V}, C={self.C}); "
                f"states look like {self.states[-1]!r}"
            ) from None

    def kind_of(self, state: str) -> ClassKind:
        """'absorbing', 'recurrent' or 'transient' for one state."""
        self.index(state)  # raises the clear error for an unknown state
        return next(c.kind for c in self.classes if state in c.states)

    def to_json(self) -> dict[str, Any]:
        return {
            "V": self.V,
            "C": self.C,
            "include_short": self.include_short,
            "states": list(self.states),
            "next_token_probs": self.next_token_probs.tolist(),
            "next_state": [[self.states[j] for j in row] for row in self.next_state.tolist()],
            "classes": [c.to_json() for c in self.classes],
            "stationary": None if self.stationary is None else self.stationary.tolist(),
        }


def transition_matrix(
    model: Model, V: int, C: int, include_short: bool = False, batch_size: int = 512
) -> MarkovChain:
    """Run `model` on every context (V**C, plus shorter prefixes if asked) and build the chain."""
    check_size(V, C)
    probs = next_token_probs(model, enumerate_states(V, C, include_short), V, batch_size)
    return chain_from_probs(probs, V, C, include_short)


def next_token_probs(
    model: Model, states: Sequence[State], V: int, batch_size: int = 512
) -> np.ndarray:
    """[len(states), V] float64 softmax of the model's last-position logits, grouped by length.

    A lenscope model runs on a private view (`lenscope.model.view`): hooks attached to it are not
    seen, and its train/eval mode is left alone even while other threads use it."""
    if isinstance(model, HookedTransformer):
        with private_view(model) as view:
            return _next_token_probs(view, states, V, batch_size)
    return _next_token_probs(model, states, V, batch_size)


def _next_token_probs(model: Model, states: Sequence[State], V: int, batch_size: int) -> np.ndarray:
    out = np.zeros((len(states), V), dtype=np.float64)
    device = _model_device(model)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if was_training:
        assert isinstance(model, torch.nn.Module)
        model.eval()
    try:
        order = sorted(range(len(states)), key=lambda i: len(states[i]))
        for _, group in itertools.groupby(order, key=lambda i: len(states[i])):
            idx = list(group)
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                x = torch.tensor([states[i] for i in chunk], dtype=torch.long, device=device)
                with torch.no_grad():
                    logits = _last_logits(model(x), x, V)
                probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
                bad = ~np.isfinite(probs).all(axis=1)
                if bad.any():
                    name = state_name(states[chunk[int(np.argmax(bad))]], V)
                    raise InputError(
                        f"model produced NaN/inf logits for context {name!r}; "
                        "check the model's weights"
                    )
                out[chunk] = probs
    finally:
        if was_training:
            assert isinstance(model, torch.nn.Module)
            model.train()
    return out


def chain_from_probs(
    probs: np.ndarray, V: int, C: int, include_short: bool = False, tol: float = 0.0
) -> MarkovChain:
    """Build a chain from next-token probabilities [S, V] in `enumerate_states` order.

    Edges with probability <= tol count as absent when finding communicating classes.
    """
    check_size(V, C)
    states = enumerate_states(V, C, include_short)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(states), V):
        raise InputError(
            f"next-token probabilities have shape {probs.shape}, expected ({len(states)}, {V}) "
            f"for V={V}, C={C}, include_short={include_short}"
        )
    sums = probs.sum(axis=1)
    if (probs < 0).any() or not np.allclose(sums, 1.0, atol=1e-6):
        raise InputError("next-token probabilities must be non-negative with rows summing to 1")
    probs = probs / sums[:, None]
    next_state = next_state_table(V, C, include_short)
    names = [state_name(s, V) for s in states]
    if (probs > tol).all():
        infos = complete_context_classes(next_state, probs, len(states) - V**C)
    else:
        infos = classify(next_state, probs, tol)
    classes = [
        CommunicatingClass(
            states=[names[i] for i in info.members],
            kind=info.kind,
            period=info.period,
            stationary=None if info.stationary is None else info.stationary.tolist(),
        )
        for info in infos
    ]
    closed = [info for info in infos if info.stationary is not None]
    stationary = None
    if len(closed) == 1 and closed[0].stationary is not None:
        stationary = np.zeros(len(states), dtype=np.float64)
        stationary[closed[0].members] = closed[0].stationary
    return MarkovChain(V, C, include_short, names, probs, next_state, classes, stationary)


def _model_device(model: Model) -> torch.device | None:
    if isinstance(model, torch.nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return None


def _last_logits(logits: object, x: torch.Tensor, V: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise InputError(
            f"model returned {type(logits).__name__}, expected a logits tensor [n, t, V]; "
            "wrap the model so it returns logits"
        )
    n, t = x.shape
    if logits.ndim == 3 and logits.shape[:2] == (n, t):
        last = logits[:, -1, :]
    elif logits.ndim == 2 and logits.shape[0] == n:
        last = logits
    else:
        raise InputError(
            f"model returned logits of shape {tuple(logits.shape)} for input {tuple(x.shape)}; "
            f"expected [{n}, {t}, V]"
        )
    if last.shape[-1] != V:
        raise InputError(
            f"model's logits have vocabulary size {last.shape[-1]} but V = {V}; "
            "pass V equal to the model's vocabulary size (cfg.d_vocab)"
        )
    return last

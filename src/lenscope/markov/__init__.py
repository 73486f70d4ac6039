"""A tiny GPT as a finite-state Markov chain (Karpathy's baby GPT), its training data, its graph."""

from __future__ import annotations

from lenscope.markov.chain import (
    CommunicatingClass,
    MarkovChain,
    Model,
    chain_from_probs,
    next_token_probs,
    transition_matrix,
)
from lenscope.markov.compare import ChainComparison, ComparisonRow, compare
from lenscope.markov.empirical import EmpiricalTransitions, empirical_transitions
from lenscope.markov.graph import GraphvizError, edge_label, render, to_dot
from lenscope.markov.states import MAX_STATES, enumerate_states, state_name

__all__ = [
    "MAX_STATES",
    "ChainComparison",
    "CommunicatingClass",
    "ComparisonRow",
    "EmpiricalTransitions",
    "GraphvizError",
    "MarkovChain",
    "Model",
    "chain_from_probs",
    "compare",
    "edge_label",
    "empirical_transitions",
    "enumerate_states",
    "next_token_probs",
    "render",
    "state_name",
    "to_dot",
    "transition_matrix",
]

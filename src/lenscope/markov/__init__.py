"""A tiny GPT as a finite-state Markov chain (Karpathy's baby GPT), its training data, its graph."""

from __future__ import annotations

from lenscope.markov.chain import MarkovChain, transition_matrix
from lenscope.markov.compare import compare
from lenscope.markov.empirical import EmpiricalTransitions, empirical_transitions
from lenscope.markov.graph import GraphvizError, render, to_dot
from lenscope.markov.states import MAX_STATES

__all__ = [
    "MAX_STATES",
    "EmpiricalTransitions",
    "GraphvizError",
    "MarkovChain",
    "compare",
    "empirical_transitions",
    "render",
    "to_dot",
    "transition_matrix",
]

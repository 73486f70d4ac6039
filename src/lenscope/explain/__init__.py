"""Explanations of nodes with simulation scores: an offline token-statistics explainer (default)
and an LLM explainer for any OpenAI-compatible chat endpoint, behind one interface."""

from __future__ import annotations

from lenscope.explain.base import (
    Explainer,
    ExplainFailure,
    Score,
    Split,
    score_simulation,
    split_examples,
)
from lenscope.explain.client import ChatClient, LLMConfig, LLMError
from lenscope.explain.llm import LLMExplainer
from lenscope.explain.offline import OfflineExplainer
from lenscope.explain.run import ExplainSummary, explain_node, explain_records

__all__ = [
    "ChatClient",
    "ExplainFailure",
    "ExplainSummary",
    "Explainer",
    "LLMConfig",
    "LLMError",
    "LLMExplainer",
    "OfflineExplainer",
    "Score",
    "Split",
    "explain_node",
    "explain_records",
    "score_simulation",
    "split_examples",
]

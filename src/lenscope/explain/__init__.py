"""Explanations of nodes with simulation scores: an offline token-statistics explainer (default)
and an LLM explainer for any OpenAI-compatible chat endpoint, behind one interface."""

from __future__ import annotations

from lenscope.explain.base import Explainer
from lenscope.explain.client import LLMConfig
from lenscope.explain.llm import LLMExplainer
from lenscope.explain.offline import OfflineExplainer
from lenscope.explain.run import explain_node, explain_records

__all__ = [
    "Explainer",
    "LLMConfig",
    "LLMExplainer",
    "OfflineExplainer",
    "explain_node",
    "explain_records",
]

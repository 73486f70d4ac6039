"""The LLM explainer: an OpenAI-compatible chat model explains a node and simulates it.

Activations are shown on a 0-10 scale (negative -> 0, the node's maximum over the harvest -> 10).
The explanation sees the explanation set's top examples; each held-out example is simulated in
its own request. Any endpoint failure becomes `ExplainFailure`, recorded for that node only.
"""

from __future__ import annotations

from collections.abc import Sequence

from lenscope.explain.base import ExplainFailure
from lenscope.explain.client import ChatClient, LLMConfig, LLMError
from lenscope.explain.prompts import (
    explain_messages,
    parse_explanation,
    parse_simulation,
    simulate_messages,
)
from lenscope.records.results import Example, NodeRecord


def discretize(acts: Sequence[float], scale: float) -> list[int]:
    """Activations on 0..10: round(10 * clip(a / scale, 0, 1))."""
    s = scale if scale > 0 else 1.0
    return [round(10 * min(max(a / s, 0.0), 1.0)) for a in acts]


class LLMExplainer:
    name = "llm"

    def __init__(self, cfg: LLMConfig, n_examples: int = 6) -> None:
        self.cfg = cfg
        self.client = ChatClient(cfg)
        self.n_examples = n_examples
        self.label = f"written by {cfg.model} (LLM) from top examples"

    def explain(self, record: NodeRecord, examples: Sequence[Example]) -> str:
        top = [e for e in examples if e.set == "top"][: self.n_examples] or list(examples)[:1]
        scale = record.shade_scale
        seqs = [list(zip(e.tokens, discretize(e.acts, scale), strict=True)) for e in top]
        try:
            reply = self.client.chat(explain_messages(seqs))
        except LLMError as e:
            raise ExplainFailure(str(e)) from None
        text = parse_explanation(reply)
        if text is None:
            raise ExplainFailure(f"the LLM's explanation is empty or unusable: {reply[:80]!r}")
        return text

    def simulate(
        self, record: NodeRecord, explanation: str, examples: Sequence[Example]
    ) -> list[list[float]]:
        out = []
        for e in examples:
            try:
                reply = self.client.chat(simulate_messages(explanation, e.tokens))
            except LLMError as err:
                raise ExplainFailure(str(err)) from None
            values = parse_simulation(reply, len(e.tokens))
            if values is None:
                raise ExplainFailure(
                    f"the LLM's simulation does not list {len(e.tokens)} activations: {reply[:80]!r}"
                )
            out.append(values)
        return out

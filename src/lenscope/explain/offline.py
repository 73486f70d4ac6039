"""The offline explainer: token statistics, no language model, no network.

From the explanation set it lists the tokens with the highest mean activation and the short
contexts (previous token + token) with the highest mean activation, as a sentence that says
plainly that it is a token-statistics explanation. The simulator is the same lookup: a held-out
token gets the mean of its listed context, else of its listed token, else the mean of the
unlisted tokens. Scores therefore measure how far a node is a token / bigram detector.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lenscope.explain.base import ExplainFailure
from lenscope.records.results import Example, NodeRecord

LABEL = "token statistics (no language model)"


@dataclass
class Lookup:
    tokens: dict[int, float]
    contexts: dict[tuple[int, int], float]
    baseline: float


def _pairs(examples: Sequence[Example]) -> list[tuple[int, int, float]]:
    """(previous token or -1, token, activation) for every token of every example."""
    out = []
    for e in examples:
        for i, (t, a) in enumerate(zip(e.token_ids, e.acts, strict=True)):
            out.append((e.token_ids[i - 1] if i else -1, t, a))
    return out


def _show(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class OfflineExplainer:
    """Token-statistics explanations and their lookup simulator."""

    name = "offline"
    label = LABEL

    def __init__(self, n_tokens: int = 6, n_contexts: int = 4) -> None:
        self.n_tokens, self.n_contexts = n_tokens, n_contexts
        self._lookups: dict[str, Lookup] = {}

    def lookup(self, examples: Sequence[Example]) -> Lookup:
        by_tok: dict[int, list[float]] = defaultdict(list)
        by_ctx: dict[tuple[int, int], list[float]] = defaultdict(list)
        for prev, tok, a in _pairs(examples):
            by_tok[tok].append(a)
            if prev >= 0:
                by_ctx[(prev, tok)].append(a)
        if not by_tok:
            raise ExplainFailure("no tokens to explain from")
        tok_mean = {t: sum(v) / len(v) for t, v in by_tok.items()}
        best = sorted(tok_mean, key=lambda t: (-tok_mean[t], t))[: self.n_tokens]
        ctx_mean = {c: sum(v) / len(v) for c, v in by_ctx.items()}
        gain = [c for c in ctx_mean if ctx_mean[c] > tok_mean[c[1]]]
        ctxs = sorted(gain, key=lambda c: (-ctx_mean[c], c))[: self.n_contexts]
        rest = [a for t, v in by_tok.items() if t not in best for a in v]
        base = sum(rest) / len(rest) if rest else 0.0
        return Lookup({t: tok_mean[t] for t in best}, {c: ctx_mean[c] for c in ctxs}, base)

    def explain(self, record: NodeRecord, examples: Sequence[Example]) -> str:
        lk = self.lookup(examples)
        self._lookups[record.node_id] = lk
        names: dict[int, str] = {}
        for e in examples:
            names.update(zip(e.token_ids, e.tokens, strict=True))
        toks = ", ".join(f"{_show(names[t])} ({m:.3g})" for t, m in lk.tokens.items())
        text = f"Token statistics: highest mean activation on {toks}"
        if lk.contexts:
            ctxs = ", ".join(
                f"{_show(names[p])} then {_show(names[t])} ({m:.3g})"
                for (p, t), m in lk.contexts.items()
            )
            text += f"; strongest in the contexts {ctxs}"
        return text + f"; other tokens average {lk.baseline:.3g}."

    def simulate(
        self, record: NodeRecord, explanation: str, examples: Sequence[Example]
    ) -> list[list[float]]:
        lk = self._lookups.get(record.node_id)
        if lk is None:
            raise ExplainFailure(f"no token statistics for {record.node_id}; explain it first")
        out = []
        for e in examples:
            row = []
            for i, t in enumerate(e.token_ids):
                c = (e.token_ids[i - 1], t) if i else None
                if c is not None and c in lk.contexts:
                    row.append(lk.contexts[c])
                else:
                    row.append(lk.tokens.get(t, lk.baseline))
            out.append(row)
        return out

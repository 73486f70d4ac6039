"""Model probabilities vs training-data frequencies, state by state (seen vs unseen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lenscope.errors import InputError
from lenscope.jsonable import JsonResult
from lenscope.markov.chain import MarkovChain
from lenscope.markov.empirical import EmpiricalTransitions


@dataclass(frozen=True)
class ComparisonRow(JsonResult):
    """One state: model next-token probs, and (if seen in training) the empirical frequencies."""

    state: str
    seen: bool
    count: int
    model: list[float]
    empirical: list[float] | None
    total_variation: float | None


@dataclass(frozen=True)
class ChainComparison(JsonResult):
    """Per-state table; `mean_total_variation` averages over seen states, weighted by count."""

    V: int
    C: int
    rows: list[ComparisonRow]

    @property
    def seen_states(self) -> list[str]:
        return [r.state for r in self.rows if r.seen]

    @property
    def unseen_states(self) -> list[str]:
        return [r.state for r in self.rows if not r.seen]

    @property
    def mean_total_variation(self) -> float | None:
        seen = [r for r in self.rows if r.total_variation is not None]
        total = sum(r.count for r in seen)
        if total == 0:
            return None
        return sum(r.count * (r.total_variation or 0.0) for r in seen) / total

    def to_json(self) -> dict[str, Any]:
        return {
            "V": self.V,
            "C": self.C,
            "rows": [r.to_json() for r in self.rows],
            "mean_total_variation": self.mean_total_variation,
        }

    def format_table(self) -> str:
        """Plain-text table; probabilities as percentages per token, e.g. '45/55'."""
        header = ("state", "seen", "n", "model %", "data %", "TV")
        lines = [header]
        for r in self.rows:
            lines.append(
                (
                    r.state,
                    "yes" if r.seen else "no",
                    str(r.count),
                    _pct(r.model),
                    "-" if r.empirical is None else _pct(r.empirical),
                    "-" if r.total_variation is None else f"{r.total_variation:.2f}",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )


def compare(chain: MarkovChain, empirical: EmpiricalTransitions) -> ChainComparison:
    """Join a model's chain with the empirical counts of its training sequence."""
    if (chain.V, chain.C, chain.states) != (empirical.V, empirical.C, empirical.states):
        raise InputError(
            f"chain (V={chain.V}, C={chain.C}, {len(chain.states)} states) and empirical counts "
            f"(V={empirical.V}, C={empirical.C}, {len(empirical.states)} states) differ; "
            "build both with the same V, C and include_short"
        )
    freqs = empirical.frequencies
    rows = []
    for i, state in enumerate(chain.states):
        count = int(empirical.totals[i])
        model = chain.next_token_probs[i]
        seen = count > 0
        tv = float(0.5 * np.abs(model - freqs[i]).sum()) if seen else None
        rows.append(
            ComparisonRow(
                state=state,
                seen=seen,
                count=count,
                model=model.tolist(),
                empirical=freqs[i].tolist() if seen else None,
                total_variation=tv,
            )
        )
    return ChainComparison(chain.V, chain.C, rows)


def _pct(values: list[float]) -> str:
    return "/".join(f"{100 * v:.0f}" for v in values)

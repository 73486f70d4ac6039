"""The offline explainer: token statistics and code labels, no language model, no network.

From the explanation set it lists the tokens with the highest mean activation and the short
contexts (previous token + token) with the highest mean activation, as a sentence that says
plainly that it is a token-statistics explanation. The lookup predicts a token's activation: the
mean of its listed context, else of its listed token, else the mean of the unlisted tokens.

Then the code labels (`lenscope.data.code_labels`: token kind, inside a comment, bracket depth,
indentation level, a `def`'s argument list), read from each example's text with `tokenize`, are
tried as predictors beside the lookup: up to `max_labels` of them are added, greedily, each while
it raises the correlation of a least-squares fit (lookup value and label indicators) with the
activations on the explanation set by at least `min_gain`. The chosen labels are said in words
with the mean activation where they hold and elsewhere, and the simulator is that fit. Without a
chosen label the simulator is the lookup itself, as it was before labels (`labels=False` turns
them off). Scores measure how far a node is a token / bigram detector and a detector of these
code properties.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lenscope.data.code_labels import KIND, fragment_offsets, token_labels
from lenscope.explain.base import ExplainFailure
from lenscope.records.results import Example, NodeRecord

# The label the server and the web app show beside offline explanations; kept as it was, as the
# explanation text itself says which part is token statistics and which part code labels.
LABEL = "token statistics (no language model)"
Flags = npt.NDArray[np.bool_]
Labels = dict[str, npt.NDArray[np.int16]]

# (name, words, the indicator from a fragment's token labels)
CODE_FEATURES: list[tuple[str, str, Callable[[Labels], Flags]]] = [
    ("keyword", "on keywords", lambda lb: lb["kind"] == KIND["keyword"]),
    ("name", "on names", lambda lb: lb["kind"] == KIND["name"]),
    ("string", "inside strings", lambda lb: lb["in_string"] > 0),
    ("number", "on numbers", lambda lb: lb["kind"] == KIND["number"]),
    ("comment", "inside comments", lambda lb: lb["in_comment"] > 0),
    ("operator", "on operators and brackets", lambda lb: lb["kind"] == KIND["operator"]),
    ("def_args", "in the argument list of a def", lambda lb: lb["def_args"] > 0),
    ("depth0", "outside brackets", lambda lb: (lb["bracket_depth"] == 0) & (lb["kind"] >= 0)),
    ("depth1", "at bracket depth 1", lambda lb: lb["bracket_depth"] == 1),
    ("depth2", "at bracket depth 2", lambda lb: lb["bracket_depth"] == 2),
    ("depth3", "at bracket depth 3 or more", lambda lb: lb["bracket_depth"] >= 3),
    ("indent0", "at indentation level 0", lambda lb: (lb["indent"] == 0) & (lb["kind"] >= 0)),
    ("indent1", "at indentation level 1", lambda lb: lb["indent"] == 1),
    ("indent2", "at indentation level 2", lambda lb: lb["indent"] == 2),
    ("indent3", "at indentation level 3 or more", lambda lb: lb["indent"] >= 3),
]
WORDS = {name: words for name, words, _ in CODE_FEATURES}


@dataclass
class LabelTerm:
    name: str
    words: str
    mean_on: float  # mean activation where the label holds (explanation set)
    mean_off: float  # and where it does not


@dataclass
class Lookup:
    tokens: dict[int, float]
    contexts: dict[tuple[int, int], float]
    baseline: float
    labels: list[LabelTerm] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)  # [intercept, lookup, one per label]

    def base(self, examples: Sequence[Example]) -> list[list[float]]:
        """The token / context lookup's prediction for every token of `examples`."""
        out = []
        for e in examples:
            row = []
            for i, t in enumerate(e.token_ids):
                c = (e.token_ids[i - 1], t) if i else None
                if c is not None and c in self.contexts:
                    row.append(self.contexts[c])
                else:
                    row.append(self.tokens.get(t, self.baseline))
            out.append(row)
        return out


def _pairs(examples: Sequence[Example]) -> list[tuple[int, int, float]]:
    """(previous token or -1, token, activation) for every token of every example."""
    out = []
    for e in examples:
        for i, (t, a) in enumerate(zip(e.token_ids, e.acts, strict=True)):
            out.append((e.token_ids[i - 1] if i else -1, t, a))
    return out


def _show(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def code_flags(examples: Sequence[Example]) -> dict[str, list[Flags]]:
    """Per code feature, its indicator on each token of each example, read from the example's
    text (its tokens joined) as a fragment of Python."""
    out: dict[str, list[Flags]] = {name: [] for name, _, _ in CODE_FEATURES}
    for e in examples:
        text, offsets = fragment_offsets(list(e.tokens))
        lb = token_labels(text, offsets, fragment=True)
        for name, _, fn in CODE_FEATURES:
            out[name].append(np.asarray(fn(lb), dtype=bool))
    return out


def _fit(
    cols: list[npt.NDArray[np.float64]], y: npt.NDArray[np.float64]
) -> tuple[list[float], float]:
    """Least squares of `y` on [1, *cols]: (coefficients, correlation of the fit with y)."""
    a = np.stack([np.ones_like(y), *cols], 1)
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    fit = a @ coef
    r = 0.0 if fit.std() == 0 or y.std() == 0 else float(np.corrcoef(fit, y)[0, 1])
    return [float(c) for c in coef], r


class OfflineExplainer:
    """Token-statistics and code-label explanations and their simulator (see the module)."""

    name = "offline"
    label = LABEL

    def __init__(
        self,
        n_tokens: int = 6,
        n_contexts: int = 4,
        *,
        labels: bool = True,
        max_labels: int = 2,
        min_gain: float = 0.02,
    ) -> None:
        self.n_tokens, self.n_contexts = n_tokens, n_contexts
        self.use_labels, self.max_labels, self.min_gain = labels, max_labels, min_gain
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
        lk = Lookup({t: tok_mean[t] for t in best}, {c: ctx_mean[c] for c in ctxs}, base)
        if self.use_labels:
            self._choose_labels(lk, examples)
        return lk

    def _choose_labels(self, lk: Lookup, examples: Sequence[Example]) -> None:
        """Add code labels to `lk`, greedily, while each raises the fit's correlation."""
        y = np.array([a for e in examples for a in e.acts], dtype=np.float64)
        base = np.array([a for row in lk.base(examples) for a in row], dtype=np.float64)
        flags = {k: np.concatenate(v).astype(np.float64) for k, v in code_flags(examples).items()}
        cols = [base]
        coef, best = _fit(cols, y)
        chosen: list[str] = []
        for _ in range(self.max_labels):
            trials = {
                k: _fit([*cols, f], y)
                for k, f in flags.items()
                if k not in chosen and 0 < f.sum() < f.size
            }
            if not trials:
                break
            k = max(trials, key=lambda n: (trials[n][1], n))
            if trials[k][1] < best + self.min_gain:
                break
            chosen.append(k)
            cols.append(flags[k])
            coef, best = trials[k]
        for k in chosen:
            on = flags[k] > 0
            lk.labels.append(LabelTerm(k, WORDS[k], float(y[on].mean()), float(y[~on].mean())))
        lk.coef = coef if chosen else []

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
        text += f"; other tokens average {lk.baseline:.3g}."
        if lk.labels:
            said = ", ".join(
                f"{'higher' if t.mean_on > t.mean_off else 'lower'} {t.words} "
                f"({t.mean_on:.3g} there, {t.mean_off:.3g} elsewhere)"
                for t in lk.labels
            )
            text += f" Code labels: activation is {said}."
        return text

    def simulate(
        self, record: NodeRecord, explanation: str, examples: Sequence[Example]
    ) -> list[list[float]]:
        lk = self._lookups.get(record.node_id)
        if lk is None:
            raise ExplainFailure(f"no token statistics for {record.node_id}; explain it first")
        base = lk.base(examples)
        if not lk.labels:
            return base
        flags = code_flags(examples)
        c = lk.coef
        out = []
        for j, row in enumerate(base):
            pred = c[0] + c[1] * np.asarray(row, dtype=np.float64)
            for t, w in zip(lk.labels, c[2:], strict=True):
                pred = pred + w * flags[t.name][j]
            out.append([float(v) for v in pred])
        return out

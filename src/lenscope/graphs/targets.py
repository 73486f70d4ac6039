"""What a graph explains: its target nodes, each a linear read of the last position's logits.

By default the salient logits (circuit-tracer's rule): the most probable tokens, fewest first,
until their probabilities sum to `desired_prob` (0.95), at most `max_logits` (10); each weighs its
probability in the influence computations. A debugger question gives one target of weight 1:
a token's logit (`Logit`, `Prob`), or the logit difference mean(targets) - mean(distractors).
With `demean`, each read subtracts the mean logit over the vocabulary (circuit-tracer's logit
nodes); otherwise a target's value is the model's logit itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lenscope.attribution.questions import (
    AttentionScore,
    Logit,
    LogitDiff,
    Prob,
    resolve,
    token_text,
)
from lenscope.errors import InputError
from lenscope.model.transformer import HookedTransformer

QuestionSpec = Logit | LogitDiff | Prob | AttentionScore


@dataclass(frozen=True)
class Target:
    """One target node: `value = logits[position] @ read`; `weight` in influence sums."""

    label: str
    tokens: tuple[int, ...]  # the token ids it reads with a positive sign (its vocab index)
    read: Tensor  # [V]
    weight: float
    probability: float  # the model's probability of its (first) token
    virtual: bool = False  # a logit difference: no single vocabulary entry


def check_threshold(value: float, what: str) -> float:
    if not 0.0 < value <= 1.0 or value != value:
        raise InputError(f"{what} must be in (0, 1], not {value}")
    return float(value)


def salient_targets(
    model: HookedTransformer,
    logits: Tensor,
    *,
    desired_prob: float = 0.95,
    max_logits: int = 10,
    demean: bool = False,
) -> list[Target]:
    """The top logits covering `desired_prob` of probability, at most `max_logits`."""
    check_threshold(desired_prob, "the targets' cumulative probability")
    if max_logits < 1:
        raise InputError(f"max_logits must be at least 1, not {max_logits}")
    probs = logits.float().softmax(-1)
    top_p, top_i = probs.sort(descending=True)
    k = int((top_p.cumsum(0) < desired_prob).sum()) + 1
    k = max(1, min(k, max_logits, probs.shape[0]))
    out = []
    for p, i in zip(top_p[:k].tolist(), top_i[:k].tolist(), strict=True):
        read = _one_hot(logits, [i], demean)
        out.append(Target(token_text(model, i), (i,), read, float(p), float(p)))
    return out


def question_target(
    model: HookedTransformer, logits: Tensor, question: QuestionSpec, *, demean: bool = False
) -> Target:
    """One target (weight 1) for a debugger question about the last position's logits."""
    if isinstance(question, AttentionScore):
        raise InputError(
            "an attribution graph explains logits; for why a head attends use the graph's "
            "attention split (lenscope.graphs.attend)"
        )
    if getattr(question, "position", None) not in (None, -1, logits.shape[0] - 1):
        raise InputError("an attribution graph explains the last position's logits")
    r = resolve(model, question)
    probs = logits.float().softmax(-1)
    if isinstance(question, LogitDiff):
        read = torch.zeros_like(logits)
        for t in r.targets:
            read[t.id] += 1.0 / len(r.targets)
        for d in r.distractors:
            read[d.id] -= 1.0 / len(r.distractors)
        ids = tuple(t.id for t in r.targets)
        return Target(r.describe(), ids, read, 1.0, float(probs[ids[0]]), virtual=True)
    i = r.targets[0].id
    label = f"logit({r.targets[0].token!r})"
    return Target(label, (i,), _one_hot(logits, [i], demean), 1.0, float(probs[i]))


def _one_hot(logits: Tensor, ids: list[int], demean: bool) -> Tensor:
    read = torch.zeros_like(logits)
    read[ids] = 1.0
    return read - read.mean() if demean else read

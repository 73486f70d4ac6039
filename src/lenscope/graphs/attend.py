"""Why a head attends, on the graph (6a): the head's attention score from query q to key k split
into the contributions of the graph's nodes (features, error nodes, embeddings) on the query side
and on the key side.

The score is bilinear: s = q . k / attn_scale with q and k affine in every node's write in the
frozen replacement model. With the key side held at its real value, s = sum_n q_n . k + bias_q
exactly (likewise for the key side), so each node's query-side contribution is its write dotted
with the gradient of s when the keys are detached: one backward pass per side. The question is
the debugger's attention question (`attribution.questions.AttentionScore`, resolved the same
way); the debugger's own split (`lenscope why --attention`) gives the same two sides over heads,
neurons and SAE latents, this one over transcoder features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lenscope.attribution.questions import AttentionScore, resolve, token_text
from lenscope.errors import InputError
from lenscope.graphs.build import EdgeColumns, tokenize
from lenscope.graphs.replacement import ReplacementModel
from lenscope.jsonable import JsonResult
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.sae.dictionary import Dictionary


@dataclass(kw_only=True)
class Contribution(JsonResult):
    node_id: str
    label: str
    value: float


@dataclass(kw_only=True)
class AttendResult(JsonResult):
    head: str
    query_position: int
    key_position: int
    score: float  # as the softmax sees it
    query_side: list[Contribution]  # the largest |value| first
    key_side: list[Contribution]
    query_bias: float  # what the query side's bias terms give (nodes removed)
    key_bias: float
    query_total: float  # every node's query-side contribution + query_bias == score
    key_total: float
    by_kind: dict[str, dict[str, float]]  # side -> {feature, error, embedding} sums


def why_attends(
    model: HookedTransformer,
    prompt: str | Sequence[int],
    transcoders: Sequence[Dictionary],
    question: AttentionScore,
    top_k: int = 10,
) -> AttendResult:
    if model.cfg.attn_scores_soft_cap > 0:
        raise InputError(
            f"{model.cfg.name} soft-caps attention scores: the split needs them bilinear"
        )
    r = resolve(model, question)
    tokens = tokenize(model, prompt)
    n = int(tokens.numel())
    q, k = r.answer_positions([n])[0], r.key_positions([n])[0]
    rm = ReplacementModel(model, transcoders, tokens)
    cols = EdgeColumns(rm)
    layer, head = question.layer, question.head
    pre = f"blocks.{layer}.attn."
    real: dict[str, Tensor] = {}
    with torch.no_grad():
        rm.run(hooks=[(pre + "hook_q", _keep(real, "q")), (pre + "hook_k", _keep(real, "k"))])

    def side(frozen: str) -> tuple[float, Tensor, float]:
        box: dict[str, Tensor] = {}
        hold: list[HookSpec] = [
            (pre + f"hook_{frozen}", lambda x, h: real[frozen]),
            (pre + "hook_attn_scores", _keep(box, "s", detach=False)),
        ]
        out = rm.run(grad=True, hooks=hold)
        score = box["s"][0, head, q, k]
        grads = torch.autograd.grad(score, out.leaves, allow_unused=True, materialize_grads=True)
        contrib = cols.edges([g.detach()[None] for g in grads])[0]
        with torch.no_grad():
            rm.run(rm.zero_deltas(), hooks=hold)
        return float(score.detach()), contrib, float(box["s"][0, head, q, k])

    score, qc, qb = side("k")
    _, kc, kb = side("q")
    ids = _node_ids(rm, cols)
    kinds = _kinds(rm, cols)

    def top(c: Tensor) -> list[Contribution]:
        order = c.abs().argsort(descending=True)[:top_k].tolist()
        return [Contribution(node_id=ids[i][0], label=ids[i][1], value=float(c[i])) for i in order]

    def sums(c: Tensor) -> dict[str, float]:
        return {name: float(c[m].sum()) for name, m in kinds.items()}

    return AttendResult(
        head=f"L{layer}.H{head}",
        query_position=q,
        key_position=k,
        score=score,
        query_side=top(qc),
        key_side=top(kc),
        query_bias=qb,
        key_bias=kb,
        query_total=float(qc.sum()) + qb,
        key_total=float(kc.sum()) + kb,
        by_kind={"query": sums(qc), "key": sums(kc)},
    )


def _keep(box: dict[str, Tensor], key: str, detach: bool = True) -> Any:
    def fn(x: Tensor, _h: Any) -> None:
        box[key] = x.detach() if detach else x

    return fn


def _node_ids(rm: ReplacementModel, cols: EdgeColumns) -> list[tuple[str, str]]:
    model, toks = rm.model, rm.tokens[0].tolist()
    out = []
    for d, w in enumerate(cols.which):
        for pos, idx in w.tolist():
            out.append((f"{d}_{idx}_{pos}", f"L{d} feature {idx} at {pos}"))
    for layer in range(rm.n_layers):
        out += [(f"0_{layer}_{p}", f"L{layer} error at {p}") for p in range(rm.n)]
    out += [
        (f"E_{t}_{p}", f"embedding {token_text(model, t)!r} at {p}") for p, t in enumerate(toks)
    ]
    return out


def _kinds(rm: ReplacementModel, cols: EdgeColumns) -> dict[str, Tensor]:
    F, E = cols.n_active, rm.n_layers * rm.n
    idx = torch.arange(cols.n_cols)
    return {"feature": idx < F, "error": (idx >= F) & (idx < F + E), "embedding": idx >= F + E}

"""Interventions from a graph, run in the real model (6d): ablate or steer features by their
graph node ids (`{layer}_{index}_{pos}`) and compare the model's next-token predictions.

Each edited transcoder is spliced into the real forward pass with its error kept
(`sae.dictionary.splice(keep_error=True)`): untouched, that is exactly the model; an edit sets
the feature's activation at its position (0 to ablate, `value` to steer) and adds the change of
its write at every MLP output it writes. Everything downstream (attention patterns, norms, other
MLPs and features) then responds as the model does: nothing is frozen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from lenscope.attribution.questions import token_text
from lenscope.errors import InputError
from lenscope.graphs.build import tokenize
from lenscope.graphs.replacement import check_transcoders
from lenscope.jsonable import JsonResult
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.sae.dictionary import Dictionary, splice

_FEATURE = re.compile(r"^(\d+)_(\d+)_(\d+)$")


class FeatureEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str
    op: Literal["ablate", "steer"]
    value: float | None = None


@dataclass(kw_only=True)
class TokenChange(JsonResult):
    token: str
    id: int
    before: float  # probability
    after: float


@dataclass(kw_only=True)
class InterventionResult(JsonResult):
    edits: list[str]
    before: list[TokenChange]  # the model's top tokens, and their probability after the edits
    after: list[TokenChange]  # the top tokens after the edits
    kl: float  # KL(before || after) at the last position


def parse_feature(
    node_id: str, n_layers: int, n_pos: int, d_sae: Sequence[int]
) -> tuple[int, int, int]:
    m = _FEATURE.match(node_id.strip())
    if m is None:
        raise InputError(
            f"{node_id!r} is not a feature node id; features are LAYER_INDEX_POS, like 1_17_4"
        )
    layer, idx, pos = (int(g) for g in m.groups())
    if not 0 <= layer < n_layers:
        raise InputError(f"feature {node_id}: layer {layer} is not in 0..{n_layers - 1}")
    if not 0 <= idx < d_sae[layer]:
        raise InputError(
            f"feature {node_id}: layer {layer}'s transcoder has {d_sae[layer]} features"
        )
    if not 0 <= pos < n_pos:
        raise InputError(f"feature {node_id}: position {pos} is beyond the prompt's {n_pos} tokens")
    return layer, idx, pos


def intervene(
    model: HookedTransformer,
    prompt: str | Sequence[int],
    transcoders: Sequence[Dictionary],
    edits: Sequence[FeatureEdit],
    top_k: int = 5,
) -> InterventionResult:
    """The real model's next-token distribution before and after `edits` (see the module)."""
    dics = check_transcoders(model, transcoders)
    tokens = tokenize(model, prompt)[None].to(model.device)
    n = int(tokens.shape[1])
    if not edits:
        raise InputError("give at least one edit")
    plan: dict[int, list[tuple[int, int, float]]] = {}
    for e in edits:
        layer, idx, pos = parse_feature(e.node_id, len(dics), n, [d.d_sae for d in dics])
        if e.op == "steer" and e.value is None:
            raise InputError(f"steering {e.node_id} needs a value")
        plan.setdefault(layer, []).append(
            (pos, idx, 0.0 if e.op == "ablate" else float(e.value or 0))
        )
    specs: list[HookSpec] = []
    for layer, items in plan.items():
        specs += splice(dics[layer], keep_error=True, edit=_setter(items))
    with torch.no_grad():
        before = model(tokens)[0, -1].float().softmax(-1)
        with model.hooks(specs):
            after = model(tokens)[0, -1].float().softmax(-1)
    kl = float((before * (before.clamp(min=1e-30).log() - after.clamp(min=1e-30).log())).sum())

    def rows(p: Tensor) -> list[TokenChange]:
        return [
            TokenChange(
                token=token_text(model, i), id=i, before=float(before[i]), after=float(after[i])
            )
            for i in p.topk(min(top_k, p.shape[0])).indices.tolist()
        ]

    return InterventionResult(
        edits=[f"{e.op} {e.node_id}" + (f" = {e.value}" if e.op == "steer" else "") for e in edits],
        before=rows(before),
        after=rows(after),
        kl=kl,
    )


def _setter(items: list[tuple[int, int, float]]) -> Callable[[Tensor], Tensor]:
    def edit(f: Tensor) -> Tensor:
        out = f.clone()
        for pos, idx, value in items:
            out[:, pos, idx] = value
        return out

    return edit

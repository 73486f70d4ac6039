"""Measured effects: re-run the question with single nodes ablated, many nodes per batched pass.

Row 0 of each pass is the prompt under the request's interventions only; row i adds the ablation
of the i-th node, so `effect = value(row 0) - value(row i)`. A node in layer l cannot change the
stream entering block l, so a pass whose nodes all sit in layers >= l starts from the captured
stream leaving block l - 1 (after that block's hooks) and runs only the blocks from l on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any, Literal

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture, forward_value
from lenscope.errors import InputError
from lenscope.interventions.edits import Edit
from lenscope.interventions.plan import Plan, Sources, node_target
from lenscope.interventions.prompts import PromptBatch, repeat_batch
from lenscope.interventions.spec import Prompt
from lenscope.model.hooks import HookSpec
from lenscope.model.transformer import HookedTransformer
from lenscope.nodes import NodeId, NodeKind
from lenscope.sae.dictionary import Dictionary

ROWS_PER_PASS = 32
Hooks = Sequence[HookSpec]


def start_layer(node: NodeId) -> int:
    """The first block whose output the node can change."""
    return 0 if node.kind in (NodeKind.EMBED, NodeKind.POS) else node.layer or 0


def measure_ablations(
    view: HookedTransformer,
    cap: Capture,
    row: int,
    nodes: Sequence[NodeId],
    plan: Plan,
    latents: Mapping[str, Dictionary],
    mode: Literal["zero", "mean"] = "zero",
    reference: Sequence[Prompt] | None = None,
) -> dict[NodeId, float]:
    """value - value with each node ablated (zero, or mean over `reference`), for prompt `row`."""
    if not nodes:
        return {}
    if mode == "mean" and not reference:
        raise InputError("mean ablation needs reference prompts; give some or use zero ablation")
    sources = Sources(view, latents, list(reference or []))
    means: dict[tuple[str, bool], Tensor] = {}
    out: dict[NodeId, float] = {}
    ordered = sorted(nodes, key=start_layer)
    for start, group in groupby(ordered, key=start_layer):
        todo = list(group)
        for i in range(0, len(todo), ROWS_PER_PASS - 1):
            part = todo[i : i + ROWS_PER_PASS - 1]
            rep = repeat_batch(cap.batch, row, len(part) + 1)
            extra = Plan()
            for j, node in enumerate(part, start=1):
                hook, sel, is_latent = node_target(node)
                value: Tensor | float = 0.0
                if mode == "mean":
                    if node.granularity == "pair":
                        raise InputError(f"{node}: token-pair nodes can only be zero-ablated")
                    key = (hook, is_latent)
                    if key not in means:
                        means[key] = sources.mean(hook, is_latent)
                    value = means[key]
                edit = Edit({0: [j], **sel}, value, what=f"ablating {node}")
                extra.add(hook, edit, latent=is_latent)
            hooks = plan.merged(extra).hooks(latents)
            with torch.no_grad():
                values = _values(view, cap, rep, row, start, hooks)
            for j, node in enumerate(part, start=1):
                out[node] = float(values[0] - values[j])
    return out


def _values(
    view: HookedTransformer, cap: Capture, rep: PromptBatch, row: int, start: int, hooks: Hooks
) -> Tensor:
    q = cap.question
    ans = q.answer_positions(rep.lengths)
    keys = q.key_positions(rep.lengths) if q.is_attention else None
    if start == 0:
        return forward_value(view, rep, q, ans, keys, hooks)[0]
    x = cap.layers[start - 1].resid_post[row : row + 1].expand(rep.size, -1, -1)
    return run_from(view, rep, start, x, cap, ans, keys, hooks)


def run_from(
    view: HookedTransformer,
    rep: PromptBatch,
    start: int,
    x: Tensor,
    cap: Capture,
    ans: list[int],
    keys: list[int] | None,
    hooks: Hooks,
) -> Tensor:
    """The question's value when the stream entering block `start` is `x`."""
    q = cap.question
    # the model's own positions and attention mask, exactly as its forward computes them
    positions, mask4 = view._positions_and_mask(rep.tokens, rep.mask)
    rotary = cap.w.blocks[0].attn.rotary if view.cfg.n_layers else None
    rot = rotary.cos_sin(positions, x.dtype) if rotary is not None else None
    rows = torch.arange(rep.size, device=x.device)
    a = torch.tensor(ans, device=x.device)
    end = q.layer + 1 if q.is_attention else view.cfg.n_layers
    scores: dict[str, Tensor] = {}

    def keep(s: Tensor, hook: Any) -> None:
        scores["s"] = s

    extra = [(f"blocks.{q.layer}.attn.hook_attn_scores", keep)] if q.is_attention else []
    with view.hooks(fwd=[*hooks, *extra]):
        for block in view.blocks[start:end]:
            x = block(x, rot, mask4)
        if q.is_attention:
            assert keys is not None
            k = torch.tensor(keys, device=x.device)
            return scores["s"][rows, q.head, a, k]
        logits = view.unembed_resid(view.ln_final(x)[rows, a])
    return q.value(logits)

"""Estimated total effect (activation x gradient) is the first-order change of the question under a
small scaling of the node; measured ablations equal a manual hooked re-run of the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.attribution.results import NodeRow
from lenscope.nodes import NodeId, NodeKind
from tests.attribution.factory import logit_diff, logits_with, prompt, random_model

T, D = 5, 11


def scaling_hook(node: NodeId, factor: float) -> tuple[str, Callable[[Tensor, Any], Tensor]]:
    """Multiply the node's activation entries by `factor`, written without the engine's code."""

    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        p = slice(None) if node.position is None else node.position
        if node.kind is NodeKind.HEAD and node.key_position is not None:
            x[:, node.index, node.position, node.key_position] *= factor
        elif node.kind in (NodeKind.HEAD, NodeKind.NEURON):
            x[:, p, node.index] *= factor
        else:
            x[:, p] *= factor
        return x

    return node.hook_name, fn


def picked_rows(rows: list[NodeRow]) -> list[NodeRow]:
    out = []
    for gran in ("component", "position", "pair"):
        for kind in NodeKind:
            same = [r for r in rows if r.granularity == gran and r.kind is kind]
            out += same[:1]
    return out


@pytest.mark.parametrize("kind", ["gpt2", "rotary_rms_gqa"])
def test_activation_times_gradient_is_the_first_order_change(kind: str) -> None:
    model = random_model(kind).double()
    ids = prompt()
    r = Debugger(model).why(ids, LogitDiff(target=[T], distractor=[D]), measure=0)
    rows = picked_rows(r.table.rows)
    assert {row.granularity for row in rows} == {"component", "position", "pair"}
    eps = 1e-5
    for row in rows:
        node = NodeId.parse(row.node)
        up = logit_diff(logits_with(model, ids, [scaling_hook(node, 1 + eps)]), T, D)
        down = logit_diff(logits_with(model, ids, [scaling_hook(node, 1 - eps)]), T, D)
        assert row.total_effect == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["gpt2", "parallel", "rotary_rms_gqa"])
def test_measured_zero_ablation_matches_a_manual_hooked_rerun(kind: str) -> None:
    model = random_model(kind, layers=3)
    ids = prompt()
    r = Debugger(model).why(ids, LogitDiff(target=[T], distractor=[D]), measure=4)
    clean = logit_diff(logits_with(model, ids), T, D)
    measured = [row for row in r.table.rows if row.ablation_effect is not None]
    assert len(measured) >= 10
    assert {row.granularity for row in measured} == {"component", "position", "pair"}
    for row in measured:
        ablated = logit_diff(
            logits_with(model, ids, [scaling_hook(NodeId.parse(row.node), 0.0)]), T, D
        )
        assert row.ablation_effect == pytest.approx(clean - ablated, abs=1e-4)
    ranked = [rk for rk in r.table.rankings if rk.column == "ablation_effect"]
    assert ranked and all(
        set(rk.positive + rk.negative) <= {m.node for m in measured} for rk in ranked
    )


def test_measured_mean_ablation_matches_a_manual_hooked_rerun() -> None:
    model = random_model("gpt2")
    ids = prompt()
    reference = [prompt(7, seed=s) for s in (3, 4, 5)]
    r = Debugger(model).why(
        ids, LogitDiff(target=[T], distractor=[D]), measure=3, ablation="mean", reference=reference
    )
    clean = logit_diff(logits_with(model, ids), T, D)
    measured = [row for row in r.table.rows if row.ablation_effect is not None]
    assert measured and all(row.granularity != "pair" for row in measured)
    for row in measured:
        node = NodeId.parse(row.node)
        acts = []
        for ref in reference:
            _, cache = model.run_with_cache(torch.tensor([ref]), names_filter=node.hook_name)
            acts.append(cache[node.hook_name][0])
        mean = torch.cat(acts).mean(0)  # over every reference token

        def fn(x: Tensor, hook: Any, node: NodeId = node, mean: Tensor = mean) -> Tensor:
            x = x.clone()
            p = slice(None) if node.position is None else node.position
            if node.kind in (NodeKind.HEAD, NodeKind.NEURON):
                x[:, p, node.index] = mean[node.index]
            else:
                x[:, p] = mean
            return x

        ablated = logit_diff(logits_with(model, ids, [(node.hook_name, fn)]), T, D)
        assert row.ablation_effect == pytest.approx(clean - ablated, abs=1e-4)

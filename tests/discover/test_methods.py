"""Identities of selection, faithfulness and ACDC, checked against direct computation."""

from __future__ import annotations

import pytest
import torch

from lenscope.discover import faithful, select
from lenscope.discover.acdc import acdc
from lenscope.discover.context import DiscoveryContext
from lenscope.discover.eap import eap_ig_activations_scores, eap_scores
from lenscope.discover.patch import edge_effect
from lenscope.discover.tasks import load_task
from lenscope.model.transformer import HookedTransformer


def test_curve_ends_and_completeness(induction_ctx: DiscoveryContext) -> None:
    ctx = induction_ctx
    scores = eap_scores(ctx)
    curve, area, n80, n90 = faithful.faithfulness_curve(ctx, scores, points=8)
    assert curve[0][0] == 0 and curve[0][1] == pytest.approx(0.0, abs=1e-6)
    assert curve[-1][0] == ctx.graph.n_edges and curve[-1][1] == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < area < 1.5
    assert n80 is not None and n90 is not None and n80 <= n90
    # the smallest n reaching 90% really reaches it and n - 1 does not
    c = faithful.FaithfulnessCurve(ctx, scores)
    assert c.fraction(n90) >= 0.9 and c.fraction(n90 - 1) < 0.9
    all_edges = torch.ones(ctx.graph.n_edges, dtype=torch.bool)
    assert faithful.completeness(ctx, all_edges) == pytest.approx(0.0, abs=1e-6)
    assert faithful.completeness(ctx, ~all_edges) == pytest.approx(1.0, abs=1e-6)


def test_top_n_threshold_greedy(induction_ctx: DiscoveryContext) -> None:
    g = induction_ctx.graph
    scores = torch.linspace(-1, 1, g.n_edges, dtype=torch.float64)
    keep = select.top_n(scores, 5)
    assert int(keep.sum()) == 5 and bool(keep[0]) and bool(keep[-1])
    assert int(select.threshold(scores, 0.99).sum()) == 2
    chosen = select.greedy(g, scores, 10)
    assert int(chosen.sum()) == 10
    sources = {g.upstream[int(u)].node_id for u in g.edge_up[chosen]}
    for k in chosen.nonzero()[:, 0].tolist():  # connected: every target is reached from logits
        target = g.receivers[int(g.edge_recv[k])].node.node_id
        assert target == "logits" or target in sources


def test_acdc_first_test_is_exact_patching(attn2: HookedTransformer) -> None:
    ctx = DiscoveryContext.build(attn2, load_task("induction", attn2).head(6), "resample")
    scores, kept = acdc(ctx, tau=1e9)  # everything is pruned
    assert not bool(kept.any())
    first = ctx.graph.edge_index("L1.H3->logits")  # the first edge ACDC tests
    assert float(scores[first]) == pytest.approx(edge_effect(ctx, first), abs=1e-5)
    scores, kept = acdc(ctx, tau=0.0)  # only edges that do not hurt at all go
    assert bool(kept[first])


def test_ig_activations_with_one_step_is_eap(
    induction_ctx: DiscoveryContext,
) -> None:
    """With one step (alpha = 1) every interpolation is the clean run: EAP exactly."""
    torch.testing.assert_close(
        eap_ig_activations_scores(induction_ctx, steps=1),
        eap_scores(induction_ctx),
        atol=1e-5,
        rtol=1e-5,
    )


def test_ablations_differ_and_are_named(attn2: HookedTransformer) -> None:
    task = load_task("induction", attn2).head(4)
    empties = {}
    for ab in ("zero", "mean", "mean-pos", "resample"):
        ctx = DiscoveryContext.build(attn2, task, ab)
        assert ctx.ablation == ab
        empties[ab] = ctx.empty_value
    assert len({round(v, 4) for v in empties.values()}) == 4
    # mean-pos of one row's corrupted run at its own positions is that run: resample
    one = load_task("induction", attn2).head(1)
    a = DiscoveryContext.build(attn2, one, "mean-pos").ablated
    b = DiscoveryContext.build(attn2, one, "resample").ablated
    torch.testing.assert_close(a, b)

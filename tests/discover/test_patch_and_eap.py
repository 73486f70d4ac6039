"""Exact patching of one edge against hand-written hooked runs of the model, and EAP against the
derivative of that same hand-written run (autograd through the model's own forward)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lenscope.discover import eap
from lenscope.discover.context import DiscoveryContext
from lenscope.discover.patch import edge_effect
from lenscope.discover.tasks import load_task, metric_value
from lenscope.model.hooks import HookPoint
from lenscope.model.layers import Block
from lenscope.model.norms import normalize
from lenscope.model.transformer import HookedTransformer


def _head_out(cache: dict[str, Tensor], model: HookedTransformer, layer: int, head: int) -> Tensor:
    return cache[f"blocks.{layer}.attn.hook_z"][:, :, head] @ model.W_O[layer, head]


def _block(model: HookedTransformer, layer: int) -> Block:
    b = model.blocks[layer]
    assert isinstance(b, Block)
    return b


def _cache(model: HookedTransformer, tokens: Tensor) -> dict[str, Tensor]:
    _, c = model.run_with_cache(tokens)
    return {k: c[k] for k in c}


def _k_edge_run(
    ctx: DiscoveryContext, src: tuple[int, int], dst: tuple[int, int], t: Tensor
) -> Tensor:
    """The metric with head `src`'s write into head `dst`'s key input moved by t x (its
    resampled output - its clean output), by hooking the model's own hook_k."""
    model, b = ctx.ef.model, ctx.batch
    clean, corr = _cache(model, b.clean), _cache(model, b.corrupted)
    diff = _head_out(clean, model, *src) - _head_out(corr, model, *src)
    lay, h = dst
    resid = clean[f"blocks.{lay}.hook_resid_pre"]
    x = normalize(_block(model, lay).ln1, resid - t * diff)
    k = x @ model.W_K[lay, h] + model.b_K[lay, h]

    def put(act: Tensor, hook: HookPoint) -> Tensor:
        act = act.clone()
        act[:, :, h] = k
        return act

    with model.hooks(fwd=[(f"blocks.{lay}.attn.hook_k", put)]):
        logits = model(b.clean)
    return metric_value(logits, b, "logit_diff")


def test_one_key_edge_equals_a_hooked_run(induction_ctx: DiscoveryContext) -> None:
    ctx = induction_ctx
    k = ctx.graph.edge_index("L0.H2->L1.H3:k")
    with torch.no_grad():
        patched = float(_k_edge_run(ctx, (0, 2), (1, 3), torch.tensor(1.0)))
    assert edge_effect(ctx, k) == pytest.approx(ctx.full_value - patched, abs=1e-4)


def test_an_mlp_edge_with_zero_ablation(mini: HookedTransformer) -> None:
    task = load_task("brackets", mini).head(6)
    ctx = DiscoveryContext.build(mini, task, "zero")
    b = ctx.batch
    with torch.no_grad():
        c = _cache(mini, b.clean)
        src = _head_out(c, mini, 0, 5)  # zero-ablated: its write is removed from the MLP's input
        ln2 = _block(mini, 0).ln2
        assert ln2 is not None
        x = normalize(ln2, c["blocks.0.hook_resid_mid"] - src)
        pre = x @ mini.W_in[0] + mini.b_in[0]

        def put(act: Tensor, hook: HookPoint) -> Tensor:
            return pre

        with mini.hooks(fwd=[("blocks.0.mlp.hook_pre", put)]):
            want = float(metric_value(mini(b.clean), b, "logit_diff"))
    k = ctx.graph.edge_index("L0.H5->L0.mlp")
    assert edge_effect(ctx, k) == pytest.approx(ctx.full_value - want, abs=1e-4)


def test_a_logits_edge_by_hand(induction_ctx: DiscoveryContext) -> None:
    ctx = induction_ctx
    model, b = ctx.ef.model, ctx.batch
    with torch.no_grad():
        clean, corr = _cache(model, b.clean), _cache(model, b.corrupted)
        diff = _head_out(clean, model, 1, 1) - _head_out(corr, model, 1, 1)
        final = clean["blocks.1.hook_resid_post"] - diff
        logits = normalize(model.ln_final, final) @ model.W_U
        want = float(metric_value(logits, b, "logit_diff"))
    k = ctx.graph.edge_index("L1.H1->logits")
    assert edge_effect(ctx, k) == pytest.approx(ctx.full_value - want, abs=1e-4)


def test_eap_is_the_derivative_of_the_hooked_run(induction_ctx: DiscoveryContext) -> None:
    ctx = induction_ctx
    scores = eap.eap_scores(ctx)
    for src, dst in (((0, 2), (1, 3)), ((0, 1), (1, 1))):
        t = torch.zeros((), requires_grad=True)
        value = _k_edge_run(ctx, src, dst, t)
        (d,) = torch.autograd.grad(value, t)
        name = f"L{src[0]}.H{src[1]}->L{dst[0]}.H{dst[1]}:k"
        # score = (clean - ablated) . grad = -(d metric / d t) at t = 0
        assert float(scores[ctx.graph.edge_index(name)]) == pytest.approx(-float(d), rel=1e-3)


def test_eap_matches_finite_differences_of_exact_patching(induction_ctx: DiscoveryContext) -> None:
    """Scaling an edge's ablation by a small eps: (full - metric) / eps -> the EAP score."""
    ctx = induction_ctx
    scores = eap.eap_scores(ctx)
    g = ctx.graph
    eps = 1e-3
    for name in ("L1.H3->logits", "embed->L1.H1:v", "L0.H2->L1.H1:k"):
        k = g.edge_index(name)
        mask = torch.zeros(len(g.upstream), len(g.receivers))
        mask[g.edge_up[k], g.edge_recv[k]] = eps
        fd = (ctx.full_value - ctx.value(mask)) / eps
        assert float(scores[k]) == pytest.approx(fd, rel=2e-2, abs=2e-3)


def test_eap_ig_with_one_step_is_eap(induction_ctx: DiscoveryContext) -> None:
    torch.testing.assert_close(
        eap.eap_ig_inputs_scores(induction_ctx, steps=1), eap.eap_scores(induction_ctx)
    )

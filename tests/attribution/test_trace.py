"""Tracing: head input gradients equal autograd's, edges into a node add up (with the biases) to
its input times the gradient, path-restricted chains compose exactly through linear links, and
downstream edges agree with upstream ones."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope.attribution.api import Debugger
from lenscope.attribution.questions import LogitDiff
from lenscope.attribution.reads import head_input_grads
from lenscope.errors import InputError
from lenscope.nodes import NodeKind
from tests.attribution.factory import prompt, random_model

Q = LogitDiff(target=[5], distractor=[11])


def autograd_inputs(
    model: Any, ids: list[int], names: list[str]
) -> dict[str, tuple[Tensor, Tensor]]:
    """(activation, gradient of the logit difference) at each hook, by plain autograd."""
    acts: dict[str, Tensor] = {}

    def keep(x: Tensor, hook: Any) -> None:
        x.retain_grad()
        acts[hook.name] = x

    logits = model.run_with_hooks(torch.tensor([ids]), fwd_hooks=[(n, keep) for n in names])
    (logits[0, -1, 5] - logits[0, -1, 11]).backward()
    return {n: (a.detach(), a.grad) for n, a in acts.items()}  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["gpt2", "parallel"])
def test_head_input_gradients_equal_autograd(kind: str) -> None:
    model = random_model(kind)
    ids = prompt()
    names = [f"blocks.1.attn.hook_{x}" for x in "qkv"]
    ref = autograd_inputs(model, ids, names)
    with Debugger(model).session([ids], Q) as s:
        grads = head_input_grads(s.cap, 1, g_z=s.cap.layers[1].g_z)
    for name, g in zip(names, grads, strict=True):
        torch.testing.assert_close(g, ref[name][1], atol=1e-5, rtol=1e-4)


def test_edges_into_a_head_add_up_to_its_input_times_gradient() -> None:
    model = random_model("gpt2")
    ids = prompt()
    ref = autograd_inputs(model, ids, ["blocks.1.attn.hook_k", "blocks.1.mlp.hook_pre"])
    dbg = Debugger(model)
    k, gk = ref["blocks.1.attn.hook_k"]
    t = dbg.trace(ids, Q, ["L1.H2:k"], top_k=50)
    assert t.edge_total == pytest.approx(float((k[0, :, 2] * gk[0, :, 2]).sum()), abs=1e-5)
    pre, gpre = ref["blocks.1.mlp.hook_pre"]
    t = dbg.trace(ids, Q, ["L1.N7"])
    assert t.edge_total == pytest.approx(float((pre[0, :, 7] * gpre[0, :, 7]).sum()), abs=1e-5)


def test_traces_compose_exactly_through_linear_links() -> None:
    model = random_model("gpt2")
    ids = prompt()
    dbg = Debugger(model)
    first = dbg.trace(ids, Q, ["L1.H2:k"], top_k=200)
    edge = {r.node: r.edge for r in first.rows}
    second = dbg.trace(ids, Q, ["L1.H2:k", "L0.H1:v"], top_k=200)
    assert second.node == "L0.H1"
    assert second.edge_total == pytest.approx(edge["L0.H1"], abs=1e-5)
    # positions compose too: only the write of L0.H1 at position 3 feeds the path
    at3 = dbg.trace(ids, Q, ["L1.H2:k", "L0.H1@3:v"], top_k=200)
    assert at3.edge_total == pytest.approx(edge["L0.H1@3"], abs=1e-5)
    # a neuron on the path, then a head's value
    edge_n = {r.node: r.edge for r in dbg.trace(ids, Q, ["L1.N7"], top_k=200).rows}
    chain = dbg.trace(ids, Q, ["L1.N7", "L1.H0:v"], top_k=200)
    assert chain.edge_total == pytest.approx(edge_n["L1.H0"], abs=1e-5)


def test_downstream_edges_agree_with_upstream_edges_and_output_tokens() -> None:
    model = random_model("gpt2")
    ids = prompt()
    dbg = Debugger(model)
    down = dbg.trace(ids, Q, ["L0.H1@4"], direction="downstream", top_k=200)
    rows = {r.node: r for r in down.rows}
    for via in "qkv":
        up = {r.node: r.edge for r in dbg.trace(ids, Q, [f"L1.H3:{via}"], top_k=200).rows}
        got = getattr(rows["L1.H3"], f"via_{via}")
        assert got == pytest.approx(up.get("L0.H1@4", 0.0), abs=1e-6)
    up_n = {r.node: r.edge for r in dbg.trace(ids, Q, ["L0.N9"], top_k=200).rows}
    assert rows["L0.N9"].edge == pytest.approx(up_n.get("L0.H1@4", 0.0), abs=1e-6)
    # what L0.H1's write at position 4 does to the next-token logits there, by hand
    assert down.output_position == 4
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        write = cache["z", 0][0, 4, 1] @ model.W_O[0, 1]
        x = cache["resid_post", 1][0, 4]
        scale = ((x - x.mean()).pow(2).mean() + model.ln_final.eps).sqrt()
        assert model.ln_final.w is not None
        dl = ((write - write.mean()) / scale * model.ln_final.w) @ model.W_U
    top = down.promoted[0]
    assert top.id == int(dl.argmax())
    assert top.logit_change == pytest.approx(float(dl.max()), abs=1e-5)
    assert down.suppressed[0].id == int(dl.argmin())


def test_bad_traces_are_clear_errors() -> None:
    model = random_model("gpt2")
    ids = prompt()
    dbg = Debugger(model)
    with pytest.raises(InputError, match="embedding"):
        dbg.trace(ids, Q, ["embed@2"])
    with pytest.raises(InputError, match="not upstream"):
        dbg.trace(ids, Q, ["L0.H1", "L1.H0"])
    with pytest.raises(InputError, match="only heads"):
        dbg.trace(ids, Q, ["L1.N3:k"])
    with pytest.raises(InputError, match="one node"):
        dbg.trace(ids, Q, ["L1.H0", "L0.H1"], direction="downstream")
    with pytest.raises(InputError, match="beyond the prompt"):
        dbg.trace(ids, Q, ["L1.H0@40"])
    with pytest.raises(InputError, match="unknown node id"):
        dbg.trace(ids, Q, ["L1.X0"])
    assert all(r.kind is not NodeKind.LATENT for r in dbg.trace(ids, Q, ["L1.H0"]).rows)

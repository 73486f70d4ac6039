"""Mixtral, Qwen3-MoE and Qwen2-MoE (whose shared expert is its last expert) in the debugger: each expert of a mixture is a node `L{l}.E{e}` whose write is its
router weight times its output. Checked against plain hooked runs of the model: ablating an
expert through its own activations equals the debugger's measured ablation (which zeroes its
router weight), the experts' writes add up to the layer's `hook_mlp_out`, upstream and
downstream edges through the router and the experts agree."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from lenscope import HookedTransformer
from lenscope.attribution.api import Debugger
from lenscope.attribution.columns import writer_chunks
from lenscope.attribution.measure import measure_ablations
from lenscope.attribution.questions import LogitDiff
from lenscope.attribution.reads import combined, question_reads
from lenscope.errors import InputError
from lenscope.interventions import InterventionSet, ablate
from lenscope.nodes import NodeId, NodeKind, expert_node_id
from tests.attribution.test_families import IDS, MOE, family_model, pre_cap_value

Q = LogitDiff(target=[5], distractor=[11])


@pytest.fixture(scope="module", params=MOE)
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return family_model(request.param, tmp_path_factory)


def zero_expert(layer: int, e: int, position: int | None) -> tuple[str, Any]:
    def fn(x: Tensor, hook: Any) -> Tensor:
        x = x.clone()
        x[:, slice(None) if position is None else position] = 0.0
        return x

    return f"blocks.{layer}.mlp.experts.{e}.hook_post", fn


def diff(model: HookedTransformer, hooks: list[tuple[str, Any]]) -> float:
    with torch.no_grad():
        out = model.run_with_hooks(torch.tensor([IDS]), fwd_hooks=hooks)[0, -1]
    return float(out[5] - out[11])


def test_expert_node_ids() -> None:
    assert expert_node_id(2, 3) == "L2.E3"
    node = NodeId.parse("l2.e3@7")
    assert (node.kind, node.layer, node.index, node.position) == (NodeKind.EXPERT, 2, 3, 7)
    assert str(node) == "L2.E3@7" and node.component == NodeId.parse("L2.E3")
    assert node.hook_name == "blocks.2.mlp.hook_expert_weights"


def test_measured_expert_ablations_equal_hooked_reruns(model: HookedTransformer) -> None:
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([IDS]))
    nodes = []  # per layer the most used expert, and at the last position the chosen ones
    for layer in range(model.cfg.n_layers):
        w = cache[f"blocks.{layer}.mlp.hook_expert_weights"][0]
        nodes.append(NodeId(NodeKind.EXPERT, layer, int(w.sum(0).argmax())))
    for layer in (1, 2):
        w = cache[f"blocks.{layer}.mlp.hook_expert_weights"][0, -1]
        nodes += [NodeId(NodeKind.EXPERT, layer, int(e), position=13) for e in w.nonzero()[:, 0]]
    clean = diff(model, [])
    with Debugger(model).session([IDS], Q) as s:
        weights = [s.cap.layers[n.layer or 0].experts for n in nodes]
        got = measure_ablations(s.view, s.cap, 0, nodes, s.plan, {})
    for node, w in zip(nodes, weights, strict=True):
        assert w is not None
        want = clean - diff(model, [zero_expert(node.layer or 0, node.index or 0, node.position)])
        assert got[node] == pytest.approx(want, abs=1e-5), node
    # the experts chosen above are routed, so their ablations change the value
    assert all(abs(got[n]) > 1e-7 for n in nodes)
    if model.cfg.d_mlp_shared:  # the shared expert is the last one, weighed everywhere
        assert any(n.index == model.cfg.num_experts for n in nodes)


def test_an_expert_ablated_by_the_interventions_is_removed(model: HookedTransformer) -> None:
    dbg = Debugger(model)
    r = dbg.why(IDS, Q, InterventionSet.of(*ablate("L1.E2")), measure=0)
    assert r.value == pytest.approx(diff(model, [zero_expert(1, 2, None)]), abs=1e-5)
    with pytest.raises(InputError, match="mixtures of experts; name an expert") as e:
        dbg.why(IDS, Q, InterventionSet.of(*ablate("L1.N3")), measure=0)
    assert "\n" not in str(e.value)
    n = model.cfg.num_experts + (1 if model.cfg.d_mlp_shared else 0)
    with pytest.raises(InputError, match=rf"expert 9 does not exist \(0..{n - 1}\)"):
        dbg.why(IDS, Q, InterventionSet.of(*ablate("L1.E9")), measure=0)


def test_experts_add_up_to_the_mlp_at_every_position(model: HookedTransformer) -> None:
    """With a read field at every position (the value's own, moved to each position by hand),
    each position's experts write exactly what `hook_mlp_out` holds there."""
    _, R = pre_cap_value(model, Q, IDS)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([IDS]))
    with Debugger(model).session([IDS], Q) as s:
        read = combined(*question_reads(s.cap))
        read.field = R.to(read.field.dtype).expand_as(read.field).clone()
        chunks = [c for c in writer_chunks(s.cap, read) if c.kind is NodeKind.EXPERT]
    assert len(chunks) == model.cfg.n_layers
    for c in chunks:
        per_position = c.cols["read"][0].sum(-1)
        want = cache[f"blocks.{c.layer}.hook_mlp_out"][0] @ R
        torch.testing.assert_close(per_position, want.to(per_position.dtype), atol=1e-5, rtol=0)
        # an expert the router did not choose at a position writes nothing there
        w = cache[f"blocks.{c.layer}.mlp.hook_expert_weights"][0]
        assert bool((c.cols["read"][0][w == 0] == 0).all())
        torch.testing.assert_close(c.cols["activation"][0], w.to(per_position.dtype))


def test_the_table_ranks_experts(model: HookedTransformer) -> None:
    r = Debugger(model).why(IDS, Q, measure=0, top_k=40)
    experts = [row for row in r.table.rows if row.kind is NodeKind.EXPERT]
    assert experts and all(row.node.startswith(f"L{row.layer}.E") for row in experts)
    sums = {s.kind: s for s in r.table.sums}
    assert NodeKind.NEURON not in sums and NodeKind.EXPERT in sums
    # the token view's MLP column holds the experts' total effects
    assert sum(t.neurons for t in r.tokens) == pytest.approx(
        sums[NodeKind.EXPERT].total_effect, abs=1e-5
    )
    assert r.to_json()


def test_edges_into_an_expert_agree_with_edges_out_of_a_head(model: HookedTransformer) -> None:
    """Upstream (autograd through the router and the expert) and downstream (a forward-mode
    derivative along the head's write) compute the same edge two ways."""
    dbg = Debugger(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([IDS]))
    e = int(cache["blocks.2.mlp.hook_expert_weights"][0, -1].argmax())  # routed at the answer
    up = dbg.trace(IDS, Q, [f"L2.E{e}"], top_k=30).rows
    head = next(r for r in up if r.kind is NodeKind.HEAD and r.position is not None)
    down = dbg.trace(IDS, Q, [head.node], direction="downstream", top_k=200).rows
    got = {r.node: r.edge for r in down}
    assert got[f"L2.E{e}"] == pytest.approx(head.edge, abs=1e-6)
    assert head.edge != 0.0


def test_the_server_lists_experts_and_answers_why(model: HookedTransformer) -> None:
    from fastapi.testclient import TestClient

    from lenscope.server import ServerConfig, ServerState, create_app

    st = ServerState(ServerConfig("moe"), model, records_note="")
    try:
        with TestClient(create_app(st), base_url="http://127.0.0.1") as c:
            info = c.get("/api/model").json()
            assert info["node_kinds"][:2] == ["head", "expert"]
            q = {"kind": "logit_diff", "target": [5], "distractor": [11]}
            r = c.post("/api/why", json={"prompt": IDS, "question": q, "kinds": ["expert"]})
            assert r.status_code == 200, r.text
            rows = r.json()["table"]["rows"]
            assert rows and all(row["kind"] == "expert" for row in rows)
    finally:
        st.close()

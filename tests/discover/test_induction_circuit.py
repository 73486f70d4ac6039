"""On attn2's induction task the discovered circuit holds the previous-token head L0.H2 feeding
the induction heads L1.H3 and L1.H1 through their keys, the pairs `lenscope circuits` reads from
the weights alone."""

from __future__ import annotations

from lenscope.circuits.heads import find_induction_circuit
from lenscope.discover.api import discover
from lenscope.discover.tasks import load_task
from lenscope.model.transformer import HookedTransformer

K_EDGES = {"L0.H2->L1.H3:k", "L0.H2->L1.H1:k"}


def test_weights_name_the_same_pairs(attn2: HookedTransformer) -> None:
    pairs = {(p.previous_token_head, p.induction_head) for p in find_induction_circuit(attn2).pairs}
    assert {("L0.H2", "L1.H3"), ("L0.H2", "L1.H1")} <= pairs


def test_discovered_circuits_hold_the_key_edges(attn2: HookedTransformer) -> None:
    task = load_task("induction", attn2).head(12)
    for method in ("eap-ig-act", "patch"):
        res = discover(attn2, task, method, "resample", steps=3, points=12)
        assert set(res.circuit) >= K_EDGES, (method, res.circuit)
        # and they rank among the strongest edges, not at the tail of a large circuit
        top = [e.edge for e in res.edges[:12]]
        assert set(top) >= K_EDGES, (method, top)
        assert res.faithfulness.circuit_fraction >= 0.8
        view = res.graph_view()
        links = {(x["source"], x["target"], x["receiver"]) for x in view["links"]}
        assert ("L0.H2", "L1.H3", "k") in links

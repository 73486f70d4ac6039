"""Results of circuit discovery: plain dataclasses, JSON-ready, rendered by every face.

Edge scores are in units of the task metric and mean what the edge contributes (the full
model's metric minus the metric with the edge ablated, exactly for `patch`, estimated by the
others; for `acdc`, the metric's drop when the edge was tested). Every result names its ablation
and metric: faithfulness figures depend on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lenscope.discover.graph import Channel, CircuitNode, EdgeGraph
from lenscope.jsonable import JsonResult

Method = Literal["patch", "eap", "eap-ig", "eap-ig-act", "acdc"]
METHODS: tuple[Method, ...] = ("patch", "eap", "eap-ig", "eap-ig-act", "acdc")


@dataclass
class EdgeScore(JsonResult):
    """One edge: upstream node -> receiver (a head's q/k/v input, an MLP, the logits)."""

    edge: str  # "L0.H2->L1.H3:k"
    source: str  # upstream node id
    target: str  # the receiving node's id
    receiver: Channel | None  # which input of a head; None for MLPs and the logits
    score: float
    in_circuit: bool


@dataclass
class Faithfulness(JsonResult):
    """The circuit alone as a fraction of the full model (see `lenscope.discover.faithful`)."""

    curve: list[tuple[int, float]]  # (edges kept, fraction) for the top-n circuits of the scores
    area: float  # mean fraction over the share of edges kept
    n80: int | None  # smallest number of edges reaching 0.8 (None: never)
    n90: int | None
    circuit_fraction: float  # the selected circuit alone
    completeness: float  # the full model with the selected circuit knocked out
    full_value: float  # the task metric of the full model
    empty_value: float  # ... with every edge ablated
    n_edges: int


@dataclass
class CircuitNodeView(JsonResult):
    node_id: str
    layer: int | None  # the logits sit after the last layer (n_layers); embeddings at -1
    kind: str  # embed | pos | head | mlp | logits
    index: int | None = None


@dataclass
class DiscoverResult(JsonResult):
    """One method's circuit for one task, model and ablation."""

    model: str
    task: str
    method: Method
    ablation: str
    metric: str
    n_rows: int
    steps: int | None
    tau: float | None
    selection: str  # "top-n 40", "threshold 0.1", "greedy 40", "acdc tau=0.1"
    n_edges: int
    circuit: list[str]  # edge names, best first
    edges: list[EdgeScore]  # every edge, best |score| first
    faithfulness: Faithfulness
    seconds: float  # scoring time
    nodes: list[CircuitNodeView] = field(default_factory=list)  # the circuit's nodes

    def graph_view(self) -> dict[str, Any]:
        """The shape the web app's graph component draws: nodes, links, faithfulness."""
        kept = [e for e in self.edges if e.in_circuit]
        f = self.faithfulness
        return {
            "nodes": [n.to_json() for n in self.nodes],
            "links": [
                {"source": e.source, "target": e.target, "weight": e.score, "receiver": e.receiver}
                for e in kept
            ],
            "faithfulness": {
                "curve": [[n, v] for n, v in f.curve],
                "area": f.area,
                "n80": f.n80,
                "n90": f.n90,
                "completeness": f.completeness,
            },
            "method": self.method,
            "ablation": self.ablation,
        }


def node_view(node: CircuitNode, n_layers: int) -> CircuitNodeView:
    layer = node.layer
    if node.kind in ("embed", "pos"):
        layer = -1
    elif node.kind == "logits":
        layer = n_layers
    return CircuitNodeView(node.node_id, layer, node.kind, node.index)


def circuit_nodes(graph: EdgeGraph, kept_names: set[str]) -> list[CircuitNodeView]:
    """The nodes touched by the kept edges, in graph order."""
    touched: set[str] = set()
    for k in range(graph.n_edges):
        if graph.edge_name(k) in kept_names:
            touched.add(graph.upstream[int(graph.edge_up[k])].node_id)
            touched.add(graph.receivers[int(graph.edge_recv[k])].node.node_id)
    out: list[CircuitNodeView] = []
    seen: set[str] = set()
    for n in [*graph.upstream, graph.receivers[-1].node]:
        if n.node_id in touched and n.node_id not in seen:
            seen.add(n.node_id)
            out.append(node_view(n, graph.n_layers))
    return out

"""An attribution graph: the dense one `build_graph` computes, and the pruned JSON result.

Node order (circuit-tracer's): selected features, error nodes (layer-major: layer * n_pos + pos),
embeddings (one per position), targets. `adjacency[t, s]` is the direct effect of source s on
target t in the frozen replacement model; rows of error and embedding nodes are zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from lenscope.graphs.targets import Target
from lenscope.jsonable import JsonResult

NodeType = Literal["feature", "error", "embedding", "logit"]


@dataclass
class Graph:
    """The full attribution graph of one prompt (tensors; see the module)."""

    model: str
    tokens: list[int]
    str_tokens: list[str]
    n_layers: int
    hooks: list[str]  # per layer: the hook its transcoder reads (names feature pages)
    features: Tensor  # [S, 3] long: layer, position, feature index
    activations: Tensor  # [S]
    targets: list[Target]
    adjacency: Tensor  # [N, N]
    inputs: Tensor  # [N]: features' pre-activations and targets' values (0 elsewhere)
    bias: Tensor  # [N]: what the bias terms alone give each feature / target
    n_active: int  # active features on the prompt (S of them were given rows)
    backward_passes: int  # batched backward passes (one per batch of target rows)
    rows_computed: int
    head_split: dict[tuple[int, int], Tensor] = field(default_factory=dict)

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    @property
    def n_features(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_errors(self) -> int:
        return self.n_layers * self.n_pos

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def n_nodes(self) -> int:
        return self.n_features + self.n_errors + self.n_pos + self.n_targets

    @property
    def error_slice(self) -> slice:
        return slice(self.n_features, self.n_features + self.n_errors)

    @property
    def embed_slice(self) -> slice:
        s = self.n_features + self.n_errors
        return slice(s, s + self.n_pos)

    @property
    def target_slice(self) -> slice:
        return slice(self.n_nodes - self.n_targets, self.n_nodes)

    def logit_weights(self) -> Tensor:
        """[N]: each target's weight (its probability, or 1 for a question), 0 elsewhere."""
        w = torch.zeros(self.n_nodes, dtype=self.adjacency.dtype)
        w[self.target_slice] = torch.tensor([t.weight for t in self.targets], dtype=w.dtype)
        return w

    def node_type(self, i: int) -> NodeType:
        if i < self.n_features:
            return "feature"
        if i < self.error_slice.stop:
            return "error"
        if i < self.embed_slice.stop:
            return "embedding"
        return "logit"

    def place(self, i: int) -> tuple[int | None, int, int | None]:
        """(layer, position, index) of node i: a feature's index, a target's token."""
        kind = self.node_type(i)
        if kind == "feature":
            layer, pos, idx = (int(v) for v in self.features[i].tolist())
            return layer, pos, idx
        if kind == "error":
            layer, pos = divmod(i - self.n_features, self.n_pos)
            return layer, pos, None
        if kind == "embedding":
            pos = i - self.embed_slice.start
            return None, pos, self.tokens[pos]
        t = self.targets[i - self.target_slice.start]
        return None, self.n_pos - 1, t.tokens[0]

    def node_id(self, i: int) -> str:
        """Node i's id in Neuronpedia's JSON (see `lenscope.graphs.neuronpedia`)."""
        return node_id(self, i)


@dataclass(kw_only=True)
class GraphScores(JsonResult):
    """circuit-tracer's two scores of how much of the graph runs through features."""

    replacement: float  # influence through embeddings vs error nodes, over all paths
    completeness: float  # share of every node's direct input not coming from error nodes


@dataclass(kw_only=True)
class PathStep(JsonResult):
    node: str
    label: str
    weight: float  # the edge from this node into the next one (0 for the last)


@dataclass(kw_only=True)
class GraphPath(JsonResult):
    target: str
    strength: float  # product of the normalised edge weights along the path
    steps: list[PathStep]


@dataclass(kw_only=True)
class GraphSummary(JsonResult):
    """What `lenscope graph` prints: scores, sizes, the strongest paths into each target."""

    model: str
    prompt: list[str]
    targets: list[str]
    scores: GraphScores
    nodes_kept: int
    edges_kept: int
    active_features: int
    features_in_graph: int
    backward_passes: int
    paths: list[GraphPath]


def node_id(graph: Graph, i: int) -> str:
    layer, pos, idx = graph.place(i)
    kind = graph.node_type(i)
    if kind == "feature":
        return f"{layer}_{idx}_{pos}"
    if kind == "error":
        clash = torch.tensor([0, pos, layer], dtype=graph.features.dtype)
        taken = graph.n_features and bool((graph.features == clash).all(1).any())
        return f"0_{layer}_{pos}" + ("_error" if taken else "")
    if kind == "embedding":
        return f"E_{idx}_{pos}"
    return f"{graph.n_layers + 1}_{target_vocab(graph, i)}_{pos}"


def target_vocab(graph: Graph, i: int) -> int:
    k = i - graph.target_slice.start
    t = graph.targets[k]
    return int(t.read.shape[0]) + k if t.virtual else int(t.tokens[0])

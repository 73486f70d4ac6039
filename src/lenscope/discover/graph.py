"""The computational graph that circuit discovery scores: nodes, receivers and edges.

Upstream nodes write into the residual stream: the token embedding (`embed`), the learned position
embedding (`pos`, where the model has one), every attention head (`L1.H3`) and every MLP
(`L2.mlp`). Receivers read from it: each head's query, key and value inputs separately
(`L1.H3:q`, `L1.H3:k`, `L1.H3:v`), each MLP's input and the logits (the input of the final
norm). An edge joins an upstream node to a receiver that reads the residual stream after the node
wrote into it: a head of layer l reads embeddings and every node of layers < l; an MLP of layer l
also reads the heads of its own layer; the logits read every node. Biases (b_O, ...) are part of
the residual stream but no node: they are never ablated.

Edge k is the pair (`edge_up[k]`, `edge_recv[k]`) of indices into `upstream` and `receivers`;
`valid` [n_upstream, n_receivers] marks which pairs are edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from lenscope.errors import InputError
from lenscope.model.config import ModelConfig

NodeKindName = Literal["embed", "pos", "head", "mlp", "logits"]
Channel = Literal["q", "k", "v"]
CHANNELS: tuple[Channel, ...] = ("q", "k", "v")


@dataclass(frozen=True)
class CircuitNode:
    """An upstream node (it writes into the residual stream) or the logits."""

    node_id: str
    kind: NodeKindName
    layer: int | None = None
    index: int | None = None


@dataclass(frozen=True)
class Receiver:
    """One input of a node: a head's q, k or v input, an MLP's input, the logits."""

    node: CircuitNode
    channel: Channel | None = None

    @property
    def receiver_id(self) -> str:
        return self.node.node_id if self.channel is None else f"{self.node.node_id}:{self.channel}"


def mlp_id(layer: int) -> str:
    return f"L{layer}.mlp"


def head_id(layer: int, head: int) -> str:
    return f"L{layer}.H{head}"


def check_supported(cfg: ModelConfig) -> None:
    """Refuse, in one line, architectures whose residual stream the graph does not describe."""
    why = []
    if cfg.parallel_attn_mlp:
        why.append("parallel attention and MLP")
    if cfg.post_norm or not cfg.pre_norm:
        why.append("post-sublayer norms")
    if cfg.n_kv_heads not in (0, cfg.n_heads):
        why.append("grouped-query attention")
    if cfg.qk_norm != "none":
        why.append("q/k norms")
    if cfg.attn_scores_soft_cap > 0 or cfg.output_logits_soft_cap > 0:
        why.append("soft-capped scores")
    if cfg.num_experts:
        why.append("a mixture of experts")
    if any(cfg.window(i) for i in range(cfg.n_layers)):
        why.append("sliding-window attention")
    if why:
        raise InputError(
            f"circuit discovery runs pre-norm models with one key/value per head; "
            f"{cfg.name} has {', '.join(why)}"
        )


@dataclass(frozen=True)
class EdgeGraph:
    """Nodes, receivers and edges of one model (see the module docstring)."""

    n_layers: int
    n_heads: int
    has_mlp: bool
    has_pos: bool
    upstream: tuple[CircuitNode, ...]
    receivers: tuple[Receiver, ...]
    valid: Tensor  # [n_upstream, n_receivers] bool
    edge_up: Tensor  # [n_edges] long
    edge_recv: Tensor  # [n_edges] long

    @classmethod
    def of(cls, cfg: ModelConfig) -> EdgeGraph:
        check_supported(cfg)
        has_mlp, has_pos = not cfg.attn_only, cfg.positional == "learned"
        ups: list[CircuitNode] = [CircuitNode("embed", "embed")]
        if has_pos:
            ups.append(CircuitNode("pos", "pos"))
        recvs: list[Receiver] = []
        reads: list[int] = []  # how many upstream nodes each receiver reads (a prefix of ups)
        for lay in range(cfg.n_layers):
            heads = [CircuitNode(head_id(lay, h), "head", lay, h) for h in range(cfg.n_heads)]
            for ch in CHANNELS:
                for hn in heads:
                    recvs.append(Receiver(hn, ch))
                    reads.append(len(ups))
            ups.extend(heads)
            if has_mlp:
                mn = CircuitNode(mlp_id(lay), "mlp", lay)
                recvs.append(Receiver(mn))
                reads.append(len(ups))
                ups.append(mn)
        recvs.append(Receiver(CircuitNode("logits", "logits")))
        reads.append(len(ups))
        valid = torch.zeros(len(ups), len(recvs), dtype=torch.bool)
        for r, n in enumerate(reads):
            valid[:n, r] = True
        up_idx, recv_idx = valid.nonzero(as_tuple=True)
        order = torch.argsort(recv_idx * len(ups) + up_idx)
        return cls(
            cfg.n_layers,
            cfg.n_heads,
            has_mlp,
            has_pos,
            tuple(ups),
            tuple(recvs),
            valid,
            up_idx[order],
            recv_idx[order],
        )

    # ---- sizes and names ----------------------------------------------------------------------
    @property
    def n_edges(self) -> int:
        return int(self.edge_up.numel())

    @property
    def n_inputs(self) -> int:
        """Upstream nodes before the first layer: embed (and pos)."""
        return 2 if self.has_pos else 1

    def edge_name(self, k: int) -> str:
        u, r = int(self.edge_up[k]), int(self.edge_recv[k])
        return f"{self.upstream[u].node_id}->{self.receivers[r].receiver_id}"

    def edge_index(self, name: str) -> int:
        """The index of an edge named like `L0.H2->L1.H3:k`; a one-line error otherwise."""
        for k in range(self.n_edges):
            if self.edge_name(k) == name:
                return k
        raise InputError(
            f"no edge {name!r} in this graph; edges are named like "
            f"{self.edge_name(self.n_edges - 1)}"
        )

    def to_matrix(self, values: Tensor, fill: float = 0.0) -> Tensor:
        """Per-edge values [n_edges] -> [n_upstream, n_receivers] (`fill` off the edges)."""
        m = values.new_full((len(self.upstream), len(self.receivers)), fill)
        m[self.edge_up, self.edge_recv] = values
        return m

    def from_matrix(self, m: Tensor) -> Tensor:
        """[n_upstream, n_receivers] -> per-edge values [n_edges]."""
        return m[self.edge_up, self.edge_recv]

    # ---- layout of the forward ----------------------------------------------------------------
    def attn_receivers(self, layer: int) -> slice:
        """Receivers of layer `layer`'s heads: q of every head, then k, then v."""
        per = 3 * self.n_heads + (1 if self.has_mlp else 0)
        start = layer * per
        return slice(start, start + 3 * self.n_heads)

    def mlp_receiver(self, layer: int) -> int:
        per = 3 * self.n_heads + 1
        return layer * per + 3 * self.n_heads

    def heads_upstream(self, layer: int) -> slice:
        """Upstream indices of layer `layer`'s heads."""
        per = self.n_heads + (1 if self.has_mlp else 0)
        start = self.n_inputs + layer * per
        return slice(start, start + self.n_heads)

    def mlp_upstream(self, layer: int) -> int:
        return int(self.heads_upstream(layer).stop)

    def layer_of_receiver(self, r: int) -> int:
        """The layer whose computation reads receiver r (n_layers for the logits)."""
        layer = self.receivers[r].node.layer
        return self.n_layers if layer is None else layer

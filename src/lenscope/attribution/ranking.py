"""Streaming top-k over chunks of dense columns, with sums per node kind and per token.

Each chunk contributes, for every prompt and every column, its k largest positive and k most
negative entries (with all of their columns) as candidates; the union of per-chunk top-k sets holds
the global top-k, so nothing dense is kept beyond one chunk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

from lenscope.attribution.capture import Capture
from lenscope.attribution.columns import COLUMNS, Chunk
from lenscope.attribution.results import KindSum, NodeRow, TokenRow, node_fields, token_at
from lenscope.nodes import Granularity, NodeId, NodeKind

Values = dict[str, float]
RawRanking = tuple[Granularity, str, list[str], list[str]]


def component_of(chunk: Chunk, answer: Sequence[int]) -> Chunk:
    """A position chunk summed over positions (`read`, `total` and any column whose name ends
    with them); other columns (activation, write norm) are taken at each prompt's answer position."""
    b = next(iter(chunk.cols.values())).shape[0]
    dev = next(iter(chunk.cols.values())).device
    at = (torch.arange(b, device=dev), torch.tensor(list(answer), device=dev))
    cols = {}
    for c, t in chunk.cols.items():
        base = c.split(":")[-1]
        cols[c] = t.sum(1) if base in ("read", "total", "q", "k", "v", "edge") else t[at]
    return Chunk(chunk.kind, chunk.layer, chunk.site, "component", cols, chunk.hook)


def _decode(chunk: Chunk, gran: Granularity, idx: tuple[int, ...]) -> NodeId:
    if gran == "pair":
        h, q, k = idx
        return NodeId(NodeKind.HEAD, chunk.layer, h, None, q, k)
    if gran == "position":
        pos, unit = (idx[0], idx[1] if len(idx) > 1 else None)
        return NodeId(chunk.kind, chunk.layer, unit, chunk.site, pos)
    return NodeId(chunk.kind, chunk.layer, idx[0] if idx else None, chunk.site)


def _unravel(i: int, shape: Sequence[int]) -> tuple[int, ...]:
    out = []
    for s in reversed(shape):
        out.append(i % s)
        i //= s
    return tuple(reversed(out))


class Ranker:
    """Top-k candidates per prompt, granularity and ranked column; `carry` columns ride along.
    Sums per node kind and per token are kept for the `read` and `total` columns (or
    `token_col` for the token view)."""

    def __init__(
        self,
        cap: Capture,
        k: int,
        columns: Sequence[str] = COLUMNS,
        carry: Sequence[str] = (),
        token_col: str = "total",
    ) -> None:
        self.cap, self.k, self.columns, self.carry = cap, k, tuple(columns), tuple(carry)
        self.token_col = token_col
        b = cap.batch.size
        self.cands: list[dict[Granularity, dict[NodeId, Values]]] = [
            defaultdict(dict) for _ in range(b)
        ]
        self.kind_sums: dict[NodeKind, dict[str, Tensor]] = {}
        self.token_sums: dict[str, Tensor] = {}

    # ---- feeding -------------------------------------------------------------------------------
    def feed(self, chunk: Chunk, with_component: bool = True) -> None:
        """Take a chunk's candidates; a position chunk also feeds its component aggregate."""
        self._pick(chunk)
        if chunk.granularity == "component":
            return
        tc = chunk.cols.get(self.token_col)
        if chunk.granularity == "pair":
            if tc is not None:
                self._tok("heads_key", tc.sum((1, 2)))
            return
        if with_component:
            self._pick(component_of(chunk, self.cap.answer))
        sums = self.kind_sums.setdefault(chunk.kind, {})
        for c in ("read", "total", "edge"):
            if c in chunk.cols:
                t = chunk.cols[c]
                s = t.reshape(t.shape[0], -1).sum(-1)
                sums[c] = sums[c] + s if c in sums else s
        if tc is not None:
            per_tok = tc if tc.ndim == 2 else tc.sum(-1)
            name = {
                NodeKind.EMBED: "embed",
                NodeKind.POS: "pos_embed",
                NodeKind.HEAD: "heads_query",
                NodeKind.NEURON: "neurons",
                NodeKind.EXPERT: "neurons",  # a mixture's MLP share: its experts
                NodeKind.LATENT: "latents",
            }[chunk.kind]
            self._tok(name, per_tok)

    def _tok(self, name: str, t: Tensor) -> None:
        self.token_sums[name] = self.token_sums[name] + t if name in self.token_sums else t

    def _pick(self, chunk: Chunk) -> None:
        ranked = {c: t for c, t in chunk.cols.items() if c in self.columns}
        kept = {c: t for c, t in chunk.cols.items() if c in self.columns or c in self.carry}
        if not ranked:
            return
        gran = chunk.granularity
        for b, store in enumerate(self.cands):
            shape = next(iter(ranked.values()))[b].shape
            picks: set[int] = set()
            for c, t in ranked.items():
                v = t[b].reshape(-1)
                n = min(self.k, v.numel())
                if n == 0:
                    continue
                top = v.topk(n)
                picks.update(top.indices[top.values > 0].tolist())
                if c != "write_norm":
                    bot = (-v).topk(n)
                    picks.update(bot.indices[bot.values > 0].tolist())
            if not picks:
                continue
            idx = torch.tensor(sorted(picks), device=chunk.cols[next(iter(ranked))].device)
            vals = {c: t[b].reshape(-1)[idx].tolist() for c, t in kept.items()}
            for j, i in enumerate(idx.tolist()):
                node = _decode(chunk, gran, _unravel(i, shape))
                store[gran][node] = {c: vals[c][j] for c in vals}

    # ---- results -------------------------------------------------------------------------------
    def rankings(self, b: int) -> tuple[list[NodeId], list[RawRanking], dict[NodeId, Values]]:
        """(chosen nodes in rank order, (granularity, column, positive ids, negative ids) per
        ranked column, every chosen node's values)."""
        chosen: list[NodeId] = []
        seen: set[NodeId] = set()
        ranks: list[RawRanking] = []
        values: dict[NodeId, Values] = {}
        for gran, cands in self.cands[b].items():
            for c in self.columns:
                have = [(n, v[c]) for n, v in cands.items() if c in v]
                pos = sorted((x for x in have if x[1] > 0), key=lambda x: -x[1])[: self.k]
                neg = sorted((x for x in have if x[1] < 0), key=lambda x: x[1])[: self.k]
                ranks.append((gran, c, [str(n) for n, _ in pos], [str(n) for n, _ in neg]))
                for n, _ in pos + neg:
                    if n not in seen:
                        seen.add(n)
                        chosen.append(n)
                        values[n] = cands[n]
        return chosen, ranks, values

    def sums(self, b: int) -> list[KindSum]:
        return [
            KindSum(
                kind=kind,
                direct_effect=float(s["read"][b]) if "read" in s else 0.0,
                total_effect=float(s["total"][b]) if "total" in s else 0.0,
            )
            for kind, s in self.kind_sums.items()
        ]

    def token_rows(self, b: int, tokens: list[str]) -> list[TokenRow]:
        n = self.cap.batch.lengths[b]
        ts = {k: v[b, :n].tolist() for k, v in self.token_sums.items()}
        zero = [0.0] * n
        return [
            TokenRow(
                position=p,
                token=tokens[p],
                embed=ts.get("embed", zero)[p],
                pos_embed=ts["pos_embed"][p] if "pos_embed" in ts else None,
                heads_query=ts.get("heads_query", zero)[p],
                heads_key=ts.get("heads_key", zero)[p],
                neurons=ts.get("neurons", zero)[p],
                latents=ts.get("latents", zero)[p],
            )
            for p in range(n)
        ]


def make_row(node: NodeId, values: Values, tokens: list[str]) -> NodeRow:
    return NodeRow(
        **node_fields(node),
        site=node.site,
        token=token_at(tokens, node.position),
        key_token=token_at(tokens, node.key_position),
        activation=values.get("activation"),
        write_norm=values.get("write_norm"),
        direct_effect=values.get("read", 0.0),
        total_effect=values.get("total", 0.0),
    )

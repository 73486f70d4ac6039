"""6b: an edge between positions is the sum of what each attention head carried."""

from __future__ import annotations

import pytest
import torch

from lenscope.graphs.build import GraphOptions, build_graph
from lenscope.graphs.heads import carrier, edge_heads
from lenscope.graphs.replacement import ReplacementModel
from tests.graphs.helpers import PROMPT, random_transcoders, tiny


@pytest.mark.parametrize("kind", ["gpt2", "rotary_rms_gqa"])
def test_head_parts_add_up_to_cross_position_edges(kind: str) -> None:
    model = tiny(kind, layers=3)
    dics = random_transcoders(model)
    g = build_graph(model, PROMPT, dics, options=GraphOptions(10_000, 32))
    rm = ReplacementModel(model, dics, torch.tensor(PROMPT))
    A = g.adjacency
    pairs = []
    for t in [*range(g.target_slice.start, g.n_nodes), *range(g.n_features - 4, g.n_features)]:
        tpos = g.place(t)[1]
        cross = [
            s
            for s in A[t].abs().argsort(descending=True).tolist()
            if g.place(s)[1] != tpos and float(A[t, s]) != 0
        ]
        pairs += [(t, s) for s in cross[:8]]
    assert len(pairs) > 10
    kinds = {g.node_type(s) for _, s in pairs}
    assert {"feature", "embedding"} <= kinds
    parts = edge_heads(rm, g, pairs)
    for t, s in pairs:
        assert float(parts[(t, s)].sum()) == pytest.approx(float(A[t, s]), abs=1e-4)
        assert carrier(parts[(t, s)]).startswith("L")

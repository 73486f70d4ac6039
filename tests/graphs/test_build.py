"""Part 4's exact identities: the replacement forward equals the model's; each node's incoming
edges plus its bias terms equal its input; removing a source moves a target by the edge."""

from __future__ import annotations

import pytest
import torch

from lenscope.graphs.build import GraphOptions, build_graph, build_graphs
from lenscope.graphs.replacement import ReplacementModel, as_dictionaries
from lenscope.graphs.result import Graph
from tests.graphs.helpers import PROMPT, random_clt, random_transcoders, skip_transcoders, tiny

ALL = GraphOptions(max_feature_nodes=10_000, batch_size=16)


def _identity(g: Graph) -> None:
    A = g.adjacency
    for sl in (slice(0, g.n_features), g.target_slice):
        got = A[sl].sum(1) + g.bias[sl]
        torch.testing.assert_close(got, g.inputs[sl], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kind", "hook"),
    [
        ("gpt2", "hook_resid_mid"),
        ("rotary_rms_gqa", "ln2.hook_normalized"),
        ("parallel", "ln2.hook_normalized"),
    ],
)
def test_replacement_forward_equals_model_and_edges_add_up(kind: str, hook: str) -> None:
    model = tiny(kind)
    dics = random_transcoders(model, hook=hook)
    rm = ReplacementModel(model, dics, torch.tensor(PROMPT))
    with torch.no_grad():
        ref = model(torch.tensor([PROMPT]))[0]
    torch.testing.assert_close(rm.run().logits, ref, atol=1e-4, rtol=0)
    g = build_graph(model, PROMPT, dics, options=ALL)
    assert g.n_features == g.n_active > 10
    _identity(g)
    # the graph's target values are the model's logits
    for t, v in zip(g.targets, g.inputs[g.target_slice].tolist(), strict=True):
        assert abs(v - float(ref[-1, t.tokens[0]])) < 1e-4


def test_identity_with_skip_connections_and_cross_layer_transcoders() -> None:
    model = tiny(layers=3)
    for dics in (skip_transcoders(model), as_dictionaries(random_clt(model))):
        g = build_graph(model, PROMPT, dics, options=ALL)
        assert g.n_features > 10
        _identity(g)


def _remove(rm: ReplacementModel, g: Graph, s: int) -> list[torch.Tensor | None]:
    """Deltas that take source node s out of the frozen replacement model."""
    deltas: list[torch.Tensor | None] = [None] * (1 + rm.n_layers)
    kind = g.node_type(s)
    layer, pos, idx = g.place(s)
    if kind == "embedding":
        d = torch.zeros_like(rm.embed)
        d[pos] = -rm.embed[pos]
        deltas[0] = d
    elif kind == "error":
        assert layer is not None
        d = torch.zeros_like(rm.embed)
        d[pos] = -rm.error[layer][pos]
        deltas[1 + layer] = d
    else:
        assert layer is not None and idx is not None
        src = rm.sources[layer]
        for j in src.out_layers:
            dec = src.dic.decoder(f"blocks.{j}.hook_mlp_out")
            d = torch.zeros_like(rm.embed)
            d[pos] = -src.acts[pos, idx] * src.scale[pos, 0] * dec[idx]
            deltas[1 + j] = d
    return deltas


def _value(rm: ReplacementModel, g: Graph, t: int, deltas: list[torch.Tensor | None]) -> float:
    out = rm.run(deltas)
    if g.node_type(t) == "logit":
        return float(g.targets[t - g.target_slice.start].read @ out.logits[-1])
    layer, pos, idx = g.place(t)
    assert layer is not None and idx is not None
    enc = rm.sources[layer].enc
    return float(out.inputs[layer][pos] @ enc.W[:, idx] + enc.b[idx])


@pytest.mark.parametrize("which", ["per_layer", "skip", "clt"])
def test_removing_a_source_moves_a_target_by_the_edge(which: str) -> None:
    model = tiny(layers=3)
    dics = {
        "per_layer": lambda: random_transcoders(model),
        "skip": lambda: skip_transcoders(model),
        "clt": lambda: as_dictionaries(random_clt(model)),
    }[which]()
    g = build_graph(model, PROMPT, dics, options=ALL)
    rm = ReplacementModel(model, dics, torch.tensor(PROMPT))
    A = g.adjacency
    checked = 0
    for t in [*range(g.target_slice.start, g.n_nodes), *range(g.n_features - 5, g.n_features)]:
        base = _value(rm, g, t, [None] * (1 + rm.n_layers))
        order = torch.argsort(A[t].abs(), descending=True)
        picks = {int(order[0]), int(order[1])}
        for kind in ("feature", "error", "embedding"):
            cands = [int(s) for s in order[:40] if g.node_type(int(s)) == kind]
            picks.update(cands[:1])
        for s in picks:
            moved = _value(rm, g, t, _remove(rm, g, s)) - base
            assert abs(moved + float(A[t, s])) < 1e-4, (t, s, g.node_type(s))
            checked += 1
    assert checked > 10


def test_batch_size_does_not_change_edges() -> None:
    model = tiny()
    dics = random_transcoders(model)
    a = build_graph(model, PROMPT, dics, options=ALL)
    b = build_graph(
        model, PROMPT, dics, options=GraphOptions(max_feature_nodes=10_000, batch_size=3)
    )
    torch.testing.assert_close(a.adjacency, b.adjacency, atol=1e-5, rtol=0)
    assert b.backward_passes > a.backward_passes


def test_feature_budget_keeps_the_most_influential_rows() -> None:
    model = tiny()
    dics = random_transcoders(model)
    full = build_graph(model, PROMPT, dics, options=ALL)
    small = build_graph(
        model, PROMPT, dics, options=GraphOptions(max_feature_nodes=7, batch_size=4)
    )
    assert small.n_features == 7 and small.n_active == full.n_active
    # each kept feature's edges from the other kept nodes are the full graph's
    key = {tuple(f): i for i, f in enumerate(full.features.tolist())}
    rows = [key[tuple(f)] for f in small.features.tolist()]
    S, F = small.n_features, full.n_features
    cols = rows + list(range(F, full.n_nodes - full.n_targets))
    torch.testing.assert_close(
        small.adjacency[:S, : small.n_nodes - small.n_targets], full.adjacency[rows][:, cols]
    )
    torch.testing.assert_close(
        small.adjacency[-small.n_targets :, :S], full.adjacency[-full.n_targets :, rows]
    )


def test_question_target_and_batch_of_prompts() -> None:
    from lenscope.attribution.questions import LogitDiff

    model = tiny()
    dics = random_transcoders(model)
    q = LogitDiff(target=[4], distractor=[7, 9])
    gs = build_graphs(model, [PROMPT, PROMPT[:5]], dics, question=q, options=ALL)
    assert [g.n_pos for g in gs] == [8, 5]
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT[:5]]))[0, -1]
    want = float(logits[4] - (logits[7] + logits[9]) / 2)
    g = gs[1]
    assert g.n_targets == 1 and abs(float(g.inputs[-1]) - want) < 1e-4
    _identity(g)

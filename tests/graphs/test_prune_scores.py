"""Part 5: influence, pruning and scores against dense brute force (explicit inverses)."""

from __future__ import annotations

import pytest
import torch

from lenscope.graphs.build import GraphOptions, build_graph
from lenscope.graphs.prune import edge_scores, node_influence, prune
from lenscope.graphs.result import Graph
from lenscope.graphs.scores import graph_scores
from tests.graphs.helpers import PROMPT, random_transcoders, tiny


@pytest.fixture(scope="module")
def graph() -> Graph:
    model = tiny()
    return build_graph(model, PROMPT, random_transcoders(model), options=GraphOptions(64, 16))


def _dense(g: Graph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    A = g.adjacency.double().abs()
    An = A / A.sum(1, keepdim=True).clamp(min=1e-10)
    eye = torch.eye(An.shape[0], dtype=An.dtype)
    series = torch.linalg.inv(eye - An) - eye  # An + An^2 + ... (An is nilpotent: a DAG)
    return An, series, g.logit_weights().double()


def test_influence_is_the_matrix_series(graph: Graph) -> None:
    An, series, w = _dense(graph)
    torch.testing.assert_close(node_influence(graph).double(), w @ series, atol=1e-5, rtol=1e-4)
    want = An * (w @ series + w)[:, None]
    got = edge_scores(graph.adjacency, graph.logit_weights()).double()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_scores_match_their_definitions(graph: Graph) -> None:
    An, series, w = _dense(graph)
    infl = w @ series
    tok, err = infl[graph.embed_slice].sum(), infl[graph.error_slice].sum()
    out = infl + w
    completeness = ((1 - An[:, graph.error_slice].sum(1)) * out).sum() / out.sum()
    s = graph_scores(graph)
    assert abs(s.replacement - float(tok / (tok + err))) < 1e-5
    assert abs(s.completeness - float(completeness)) < 1e-5
    assert 0 < s.replacement < 1 and 0 < s.completeness < 1


def test_a_graph_without_errors_scores_one(graph: Graph) -> None:
    from dataclasses import replace

    A = graph.adjacency.clone()
    A[:, graph.error_slice] = 0
    s = graph_scores(replace(graph, adjacency=A))
    assert s.replacement == pytest.approx(1.0) and s.completeness == pytest.approx(1.0)


def test_pruning_keeps_the_influential_nodes_and_no_orphans(graph: Graph) -> None:
    _, series, w = _dense(graph)
    infl = w @ series
    p = prune(graph, 0.8, 0.98)
    keep = p.node_mask
    assert keep[graph.embed_slice.start :].all()
    # the nodes kept by the node threshold: the most influential, up to 80% of the total
    order = infl.argsort(descending=True)
    share = infl[order].cumsum(0) / infl.sum()
    first = int((share < 0.8).sum())  # nodes strictly inside the first 80%
    top = set(order[:first].tolist())
    dropped = set((~keep).nonzero()[:, 0].tolist())
    survivors = top - dropped
    assert survivors, "some of the most influential nodes survive"
    e = p.edge_mask
    F, src_end = graph.n_features, graph.embed_slice.start
    for i in keep.nonzero()[:, 0].tolist():
        if i < src_end:
            assert e[:, i].any(), f"node {i} kept without outgoing edges"
        if i < F:
            assert e[i].any(), f"feature {i} kept without incoming edges"
    assert not (e & ~keep[:, None]).any() and not (e & ~keep[None, :]).any()
    # a lower threshold keeps fewer nodes and edges
    q = prune(graph, 0.3, 0.5)
    assert int(q.node_mask.sum()) <= int(keep.sum()) and int(q.edge_mask.sum()) < int(e.sum())


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_thresholds_outside_zero_one_are_refused(graph: Graph, bad: float) -> None:
    from lenscope.errors import InputError

    with pytest.raises(InputError, match=r"\(0, 1\]"):
        prune(graph, node_threshold=bad)
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        prune(graph, edge_threshold=bad)

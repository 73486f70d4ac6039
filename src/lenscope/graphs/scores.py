"""circuit-tracer's two scores of a graph.

- replacement: of the influence (over all paths, `prune.path_influence`) that reaches the targets
  from the graph's sources, the share starting at embeddings rather than at error nodes.
- completeness: each node's share of (absolute, normalised) direct input that does not come from
  error nodes, averaged with weights its influence on the targets plus its own target weight.
"""

from __future__ import annotations

from lenscope.graphs.prune import normalized, path_influence
from lenscope.graphs.result import Graph, GraphScores


def graph_scores(graph: Graph) -> GraphScores:
    An = normalized(graph.adjacency)
    w = graph.logit_weights()
    infl = path_influence(An, w)
    tok = float(infl[graph.embed_slice].sum())
    err = float(infl[graph.error_slice].sum())
    replacement = tok / (tok + err) if tok + err > 0 else 0.0
    clean = 1 - An[:, graph.error_slice].sum(1)
    out = infl + w
    completeness = float((clean * out).sum() / out.sum()) if float(out.sum()) > 0 else 0.0
    return GraphScores(replacement=replacement, completeness=completeness)

"""One call from a prompt to a pruned, scored graph, and the strongest paths through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lenscope.graphs.build import GraphOptions, Progress, check_question, graph_of, tokenize
from lenscope.graphs.heads import carrier, edge_heads
from lenscope.graphs.prune import Pruned, prune
from lenscope.graphs.replacement import ReplacementModel, as_dictionaries
from lenscope.graphs.result import Graph, GraphPath, GraphScores, GraphSummary, PathStep
from lenscope.graphs.scores import graph_scores
from lenscope.graphs.targets import QuestionSpec, check_threshold
from lenscope.model.transformer import HookedTransformer


@dataclass
class GraphRun:
    graph: Graph
    pruned: Pruned
    scores: GraphScores
    node_threshold: float
    edge_threshold: float
    heads: dict[tuple[int, int], str]  # kept edges between positions: the head carrying most


def attribution_graph(
    model: HookedTransformer,
    prompt: str | Sequence[int],
    transcoders: object,
    *,
    question: QuestionSpec | None = None,
    options: GraphOptions | None = None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    progress: Progress | None = None,
    name_heads: bool = True,
) -> GraphRun:
    """Build (`build.build_graph`), prune and score the graph of `prompt`; with `name_heads`,
    name the head that carried each kept edge between two positions (`heads.edge_heads`)."""
    check_threshold(node_threshold, "the node threshold")
    check_threshold(edge_threshold, "the edge threshold")
    opts = options or GraphOptions()
    tokens = tokenize(model, prompt)
    dics = as_dictionaries(transcoders)
    opts.check(model, int(tokens.numel()))
    check_question(model, question)
    rm = ReplacementModel(model, dics, tokens)
    g = graph_of(rm, question=question, options=opts, progress=progress)
    pruned = prune(g, node_threshold, edge_threshold)
    heads: dict[tuple[int, int], str] = {}
    if name_heads:
        dst, src = pruned.edge_mask.nonzero(as_tuple=True)
        pairs = [
            (t, s)
            for t, s in zip(dst.tolist(), src.tolist(), strict=True)
            if g.place(t)[1] != g.place(s)[1]
        ]
        heads = {k: carrier(v) for k, v in edge_heads(rm, g, pairs).items()}
    return GraphRun(g, pruned, graph_scores(g), node_threshold, edge_threshold, heads)


def node_label(g: Graph, i: int) -> str:
    kind = g.node_type(i)
    layer, pos, idx = g.place(i)
    tok = repr(g.str_tokens[pos])
    if kind == "feature":
        return f"L{layer} feature {idx} at {pos} {tok}"
    if kind == "error":
        return f"L{layer} error at {pos} {tok}"
    if kind == "embedding":
        return f"embedding {tok} at {pos}"
    return f"target {g.targets[i - g.target_slice.start].label}"


def strongest_paths(run: GraphRun, per_target: int = 3) -> list[GraphPath]:
    """For each target, the `per_target` strongest first steps, each followed greedily along
    the kept edge of largest normalised weight down to a source."""
    g, p = run.graph, run.pruned
    A = g.adjacency * p.edge_mask
    norm = A.abs() / A.abs().sum(1, keepdim=True).clamp(min=1e-30)
    out = []
    for t in range(g.target_slice.start, g.n_nodes):
        firsts = torch.argsort(norm[t], descending=True)[:per_target]
        for f in firsts.tolist():
            if float(norm[t, f]) <= 0:
                continue
            chain, strength = [t, f], float(norm[t, f])
            while float(norm[chain[-1]].max()) > 0 and len(chain) <= g.n_nodes:
                nxt = int(norm[chain[-1]].argmax())
                strength *= float(norm[chain[-1], nxt])
                chain.append(nxt)
            chain.reverse()
            steps = [
                PathStep(
                    node=g.node_id(a),
                    label=node_label(g, a),
                    weight=float(g.adjacency[b, a]) if b is not None else 0.0,
                )
                for a, b in zip(chain, [*chain[1:], None], strict=True)
            ]
            out.append(
                GraphPath(
                    target=g.targets[t - g.target_slice.start].label, strength=strength, steps=steps
                )
            )
    return out


def summarize(run: GraphRun, per_target: int = 3) -> GraphSummary:
    g = run.graph
    return GraphSummary(
        model=g.model,
        prompt=g.str_tokens,
        targets=[t.label for t in g.targets],
        scores=run.scores,
        nodes_kept=int(run.pruned.node_mask.sum()),
        edges_kept=int(run.pruned.edge_mask.sum()),
        active_features=g.n_active,
        features_in_graph=g.n_features,
        backward_passes=g.backward_passes,
        paths=strongest_paths(run, per_target),
    )

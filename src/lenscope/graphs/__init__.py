"""Attribution graphs over transcoders (circuit tracing): a prompt's computation in the local
replacement model as feature, error, embedding and logit nodes with direct-effect edges,
pruned by influence and scored; Neuronpedia's JSON; why a head attends on the graph; edits of
graph features in the real model. See docs/graph.md.

run = attribution_graph(model, "prompt", transcoders)      # build, prune, score
summarize(run); to_neuronpedia(run.graph, run.pruned, prompt="prompt")
"""

from lenscope.graphs.api import attribution_graph, summarize
from lenscope.graphs.build import GraphOptions
from lenscope.graphs.neuronpedia import to_neuronpedia, validate_neuronpedia

__all__ = [
    "GraphOptions",
    "attribution_graph",
    "summarize",
    "to_neuronpedia",
    "validate_neuronpedia",
]

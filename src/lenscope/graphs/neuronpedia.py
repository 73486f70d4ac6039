"""Neuronpedia's attribution-graph JSON (what its graph viewer and circuit-tracer's local server
open), written from a pruned graph, and a validator of that schema.

    metadata  {slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold, schema_version}
    qParams   {pinnedIds, supernodes, linkType, clickedId, sg_pos}
    nodes     [{node_id, feature, layer, ctx_idx, feature_type, token_prob, is_target_logit,
                run_idx, reverse_ctx_idx, jsNodeId, clerp, influence, activation}]
    links     [{source, target, weight}]

Node ids: a feature `{layer}_{index}_{pos}`, an error node `0_{layer}_{pos}`, an embedding
`E_{token}_{pos}`, a target `{n_layers + 1}_{token}_{pos}` (a logit difference gets the virtual
token `d_vocab + i`). circuit-tracer's error id `0_{layer}_{pos}` is also the id of feature
number `layer` of layer 0 at that position; where both are in a graph the error's id gets the
suffix `_error` so ids stay unique. lenscope adds optional keys: `node_page` on features (the lenscope node id
of the feature's page), `head` on links that travel through attention (the head carrying most of
the edge), and a top-level `lenscope` object.
"""

from __future__ import annotations

from typing import Any

from lenscope.errors import InputError
from lenscope.graphs.prune import Pruned
from lenscope.graphs.result import Graph, node_id, target_vocab
from lenscope.nodes import latent_node_id

SCHEMA_VERSION = 1
FEATURE_TYPES = ("cross layer transcoder", "mlp reconstruction error", "embedding", "logit")
_NODE_KEYS: dict[str, type | tuple[type, ...]] = {
    "node_id": str,
    "feature": int,
    "layer": str,
    "ctx_idx": int,
    "feature_type": str,
    "token_prob": (int, float),
    "is_target_logit": bool,
    "run_idx": int,
    "reverse_ctx_idx": int,
    "jsNodeId": str,
    "clerp": str,
}
_META_KEYS: dict[str, type | tuple[type, ...]] = {
    "slug": str,
    "scan": str,
    "transcoder_list": list,
    "prompt_tokens": list,
    "prompt": str,
}


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def node_json(graph: Graph, i: int, pruned: Pruned) -> dict[str, Any]:
    kind = graph.node_type(i)
    layer, pos, idx = graph.place(i)
    nid = node_id(graph, i)
    out: dict[str, Any] = {
        "node_id": nid,
        "feature": -1,
        "layer": "",
        "ctx_idx": pos,
        "feature_type": "",
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "jsNodeId": nid,
        "clerp": "",
        "influence": float(pruned.cumulative[i]),
        "activation": None,
    }
    if kind == "feature":
        assert layer is not None and idx is not None
        out.update(
            feature=_cantor(layer, idx),
            layer=str(layer),
            feature_type=FEATURE_TYPES[0],
            jsNodeId=f"{layer}_{idx}-0",
            activation=float(graph.activations[i]),
            node_page=latent_node_id(graph.hooks[layer], idx),
        )
    elif kind == "error":
        out.update(layer=str(layer), feature_type=FEATURE_TYPES[1], jsNodeId=f"{layer}_{pos}-0")
    elif kind == "embedding":
        out.update(
            feature=pos,
            layer="E",
            feature_type=FEATURE_TYPES[2],
            jsNodeId=f"E_{idx}-{pos}",
            clerp=graph.str_tokens[pos],
        )
    else:
        k = i - graph.target_slice.start
        t = graph.targets[k]
        vocab = target_vocab(graph, i)
        out.update(
            feature=vocab,
            layer=str(graph.n_layers + 1),
            feature_type=FEATURE_TYPES[3],
            token_prob=t.probability,
            is_target_logit=k == 0,
            jsNodeId=f"L_{vocab}-{pos}",
            clerp=f"Output {t.label!r} (p={t.probability:.3f})",
        )
    return out


def to_neuronpedia(
    graph: Graph,
    pruned: Pruned,
    *,
    prompt: str,
    slug: str = "lenscope-graph",
    scan: str | None = None,
    node_threshold: float = 0.8,
    heads: dict[tuple[int, int], str] | None = None,
) -> dict[str, Any]:
    """The pruned graph as Neuronpedia's JSON; `heads` names the head on (target, source)
    links that travel through attention."""
    keep = pruned.node_mask.nonzero()[:, 0].tolist()
    nodes = {i: node_json(graph, i, pruned) for i in keep}
    links = []
    dst, src = pruned.edge_mask.nonzero(as_tuple=True)
    for t, s in zip(dst.tolist(), src.tolist(), strict=True):
        if t in nodes and s in nodes:
            link: dict[str, Any] = {
                "source": nodes[s]["node_id"],
                "target": nodes[t]["node_id"],
                "weight": float(graph.adjacency[t, s]),
            }
            if heads and (t, s) in heads:
                link["head"] = heads[(t, s)]
            links.append(link)
    used = {lk["source"] for lk in links} | {lk["target"] for lk in links}
    kept = [
        n
        for n in nodes.values()
        if n["node_id"] in used or n["feature_type"] in ("embedding", "logit")
    ]
    return {
        "metadata": {
            "slug": slug,
            "scan": scan or graph.model,
            "transcoder_list": [],
            "prompt_tokens": list(graph.str_tokens),
            "prompt": prompt,
            "node_threshold": node_threshold,
            "schema_version": SCHEMA_VERSION,
        },
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": kept,
        "links": links,
    }


def validate_neuronpedia(doc: Any) -> None:
    """`InputError` naming the first way `doc` departs from the schema (see the module)."""
    if not isinstance(doc, dict):
        raise InputError("a graph file must be a JSON object")
    for key in ("metadata", "qParams", "nodes", "links"):
        if key not in doc:
            raise InputError(f"the graph file has no {key!r}")
    _keys(doc["metadata"], _META_KEYS, "metadata")
    ids: set[str] = set()
    if not isinstance(doc["nodes"], list) or not isinstance(doc["links"], list):
        raise InputError("nodes and links must be lists")
    for n in doc["nodes"]:
        _keys(n, _NODE_KEYS, "a node")
        if n["feature_type"] not in FEATURE_TYPES:
            raise InputError(f"node {n['node_id']}: unknown feature_type {n['feature_type']!r}")
        for opt in ("influence", "activation"):
            v = n.get(opt)
            if v is not None and not isinstance(v, int | float):
                raise InputError(f"node {n['node_id']}: {opt} must be a number or null")
        if n["node_id"] in ids:
            raise InputError(f"node id {n['node_id']} appears twice")
        ids.add(n["node_id"])
    for lk in doc["links"]:
        _keys(lk, {"source": str, "target": str, "weight": (int, float)}, "a link")
        for end in ("source", "target"):
            if lk[end] not in ids:
                raise InputError(f"a link's {end} {lk[end]} is not a node")


def _keys(obj: Any, want: dict[str, type | tuple[type, ...]], what: str) -> None:
    if not isinstance(obj, dict):
        raise InputError(f"{what} must be a JSON object")
    for k, t in want.items():
        if k not in obj:
            raise InputError(f"{what} has no {k!r}")
        if not isinstance(obj[k], t) or (t is int and isinstance(obj[k], bool)):
            raise InputError(f"{what}: {k!r} has the wrong type ({type(obj[k]).__name__})")

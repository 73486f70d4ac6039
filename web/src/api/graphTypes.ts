// Types of the attribution-graph and circuit-discovery routes, written by hand from their
// contract until the server's OpenAPI (src/api/schema.ts, generated) carries them.
//
// POST /api/graph answers Neuronpedia's attribution-graph JSON as circuit-tracer 0.5.0 writes it
// (frontend/graph_models.py, utils/create_graph_files.py) plus the graph's scores and lenscope's
// optional extras: a node's `node_page` (a lenscope node id with a page at /node/{id}) and a
// link's `head` (the attention head an edge travels through, "L1.H3").

/** circuit-tracer's feature types; lenscope's per-layer transcoders may name their own. */
export type FeatureType = "embedding" | "cross layer transcoder" | "mlp reconstruction error" | "logit" | string;

export interface GraphMetadata {
  slug: string;
  scan: string;
  prompt_tokens: string[];
  prompt: string;
  node_threshold?: number | null;
  schema_version?: number | null;
  transcoder_list?: string[];
}

export interface GraphQParams {
  pinnedIds: string[];
  /** Each supernode is [name, member node_id, member node_id, ...]. */
  supernodes: string[][];
  linkType: string;
  clickedId: string;
  sparsityThreshold?: number;
  sg_pos?: string;
}

export interface GraphNode {
  node_id: string;
  feature: number;
  /** "E" for embeddings, the layer as a string for features and errors, n_layers + 1 for logits. */
  layer: string;
  ctx_idx: number;
  feature_type: FeatureType;
  jsNodeId: string;
  clerp: string;
  /** Cumulative influence: the share of all influence held by nodes at least this influential
   * (circuit-tracer's pruning score; smaller is more important). Null on logits. */
  influence: number | null;
  activation: number | null;
  token_prob: number;
  is_target_logit: boolean;
  node_page?: string | null;
}

export interface GraphLink {
  source: string;
  target: string;
  weight: number;
  head?: string | null;
}

export interface AttributionGraph {
  metadata: GraphMetadata;
  qParams: GraphQParams;
  nodes: GraphNode[];
  links: GraphLink[];
  scores: { replacement: number; completeness: number };
  lenscope?: Record<string, unknown>;
}

/** The debugger's question (POST /api/why's `question`), without attention questions. */
export type GraphQuestion =
  | { kind: "logit_diff"; target: string[]; distractor: string[] }
  | { kind: "logit" | "prob"; token: string };

export interface GraphRequest {
  prompt: string;
  question?: GraphQuestion;
  transcoders?: string;
  max_feature_nodes?: number;
  node_threshold?: number;
  edge_threshold?: number;
}

export type EditOp = "ablate" | "steer";

export interface GraphEditRequest {
  node_id: string;
  op: EditOp;
  value?: number;
}

export interface InterveneRequest {
  prompt: string;
  edits: GraphEditRequest[];
}

export interface TokenProb {
  token: string;
  prob: number;
}

/** POST /api/graph/intervene: the real model's top next tokens before and after the edits. */
export interface InterveneResult {
  before: TokenProb[];
  after: TokenProb[];
}

export interface DiscoverTask {
  name: string;
  description: string;
  model: string;
}

export type DiscoverMethod = "patch" | "eap" | "eap-ig" | "eap-ig-act" | "acdc";
export type DiscoverAblation = "zero" | "mean" | "mean-pos" | "resample";

export interface DiscoverRequest {
  task: string;
  method: DiscoverMethod;
  ablation: DiscoverAblation;
  steps?: number;
  tau?: number;
  top_n?: number;
}

export interface CircuitNode {
  node_id: string;
  /** embeddings -1, logits n_layers (or null) */
  layer: number | null;
  kind: string;
  node_page?: string | null;
  [extra: string]: unknown;
}

export interface CircuitLink {
  source: string;
  target: string;
  weight: number;
  receiver: "q" | "k" | "v" | null;
}

export interface Faithfulness {
  /** [edges kept, the circuit's metric as a fraction of the full model's] */
  curve: [number, number][];
  area: number;
  n80: number | null;
  n90: number | null;
  completeness: number;
}

export interface Circuit {
  nodes: CircuitNode[];
  links: CircuitLink[];
  faithfulness: Faithfulness;
  method: string;
  ablation: string;
}

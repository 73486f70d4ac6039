// Small answers in the exact shapes of the graph and discovery routes, for the tests.
import type { AttributionGraph, Circuit, DiscoverTask, InterveneResult } from "../api/graphTypes";

/** A two-layer model's graph for "def f(x)" → ")" vs ",", as circuit-tracer 0.5.0 writes it
 * (node ids layer_feature_pos, embeddings E_token_pos, logits at layer n_layers + 1) with
 * lenscope's extras (node_page, a link's head) and scores. */
export const GRAPH: AttributionGraph = {
  metadata: {
    slug: "def-f-x",
    scan: "mini-transcoders",
    transcoder_list: [],
    prompt_tokens: ["def", " f", "(", "x", ")"],
    prompt: "def f(x)",
    node_threshold: 0.8,
    schema_version: 1,
  },
  qParams: { pinnedIds: [], supernodes: [], linkType: "both", clickedId: "", sparsityThreshold: 0 },
  nodes: [
    { node_id: "E_100_0", feature: 0, layer: "E", ctx_idx: 0, feature_type: "embedding", jsNodeId: "E_100-0", clerp: "", influence: 0.95, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "E_101_1", feature: 1, layer: "E", ctx_idx: 1, feature_type: "embedding", jsNodeId: "E_101-1", clerp: "", influence: 0.97, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "E_102_2", feature: 2, layer: "E", ctx_idx: 2, feature_type: "embedding", jsNodeId: "E_102-2", clerp: "", influence: 0.4, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "E_103_3", feature: 3, layer: "E", ctx_idx: 3, feature_type: "embedding", jsNodeId: "E_103-3", clerp: "", influence: 0.99, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "E_104_4", feature: 4, layer: "E", ctx_idx: 4, feature_type: "embedding", jsNodeId: "E_104-4", clerp: "", influence: 0.7, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "0_12_2", feature: 90, layer: "0", ctx_idx: 2, feature_type: "cross layer transcoder", jsNodeId: "0_12-0", clerp: "an open parenthesis", influence: 0.3, activation: 1.5, token_prob: 0, is_target_logit: false, node_page: "L0.transcoder.F12" },
    { node_id: "0_-1_2", feature: -1, layer: "0", ctx_idx: 2, feature_type: "mlp reconstruction error", jsNodeId: "0_-1-2", clerp: "", influence: 0.6, activation: null, token_prob: 0, is_target_logit: false },
    { node_id: "1_7_4", feature: 43, layer: "1", ctx_idx: 4, feature_type: "cross layer transcoder", jsNodeId: "1_7-0", clerp: "inside an argument list", influence: 0.5, activation: 2.0, token_prob: 0, is_target_logit: false, node_page: "L1.transcoder.F7" },
    { node_id: "1_3_4", feature: 13, layer: "1", ctx_idx: 4, feature_type: "cross layer transcoder", jsNodeId: "1_3-0", clerp: "", influence: 0.9, activation: 0.25, token_prob: 0, is_target_logit: false, node_page: null },
    { node_id: "3_21_4", feature: 21, layer: "3", ctx_idx: 4, feature_type: "logit", jsNodeId: "L_21-4", clerp: 'Output ")" (p=0.700)', influence: null, activation: null, token_prob: 0.7, is_target_logit: true },
    { node_id: "3_22_4", feature: 22, layer: "3", ctx_idx: 4, feature_type: "logit", jsNodeId: "L_22-4", clerp: 'Output "," (p=0.200)', influence: null, activation: null, token_prob: 0.2, is_target_logit: false },
  ],
  links: [
    { source: "E_102_2", target: "0_12_2", weight: 1.0 },
    { source: "0_12_2", target: "1_7_4", weight: 2.0 },
    { source: "0_-1_2", target: "1_7_4", weight: -0.5 },
    { source: "E_104_4", target: "1_7_4", weight: 0.25, head: "L1.H3" },
    { source: "1_7_4", target: "3_21_4", weight: 3.0 },
    { source: "1_3_4", target: "3_22_4", weight: -1.2 },
    { source: "E_104_4", target: "3_21_4", weight: 0.1 },
    { source: "0_12_2", target: "3_22_4", weight: -0.4 },
  ],
  scores: { replacement: 0.8125, completeness: 0.9 },
};

/** attn2's induction circuit: the previous-token head feeds both induction heads through keys
 * (as lenscope.discover's graph_view writes it: embeddings at layer -1, logits at n_layers). */
export const CIRCUIT: Circuit = {
  nodes: [
    { node_id: "embed", layer: -1, kind: "embed" },
    { node_id: "L0.H2", layer: 0, kind: "head" },
    { node_id: "L1.H3", layer: 1, kind: "head" },
    { node_id: "L1.H1", layer: 1, kind: "head" },
    { node_id: "logits", layer: 2, kind: "logits" },
  ],
  links: [
    { source: "embed", target: "L0.H2", weight: 0.7, receiver: "v" },
    { source: "L0.H2", target: "L1.H3", weight: 1.5, receiver: "k" },
    { source: "L0.H2", target: "L1.H1", weight: 0.8, receiver: "k" },
    { source: "embed", target: "L1.H3", weight: 0.6, receiver: "v" },
    { source: "embed", target: "L1.H3", weight: -0.2, receiver: "q" },
    { source: "L1.H3", target: "logits", weight: 2.0, receiver: null },
    { source: "L1.H1", target: "logits", weight: 1.0, receiver: null },
  ],
  faithfulness: {
    curve: [
      [0, 0],
      [1, 0.3],
      [2, 0.7],
      [3, 0.85],
      [4, 0.92],
      [7, 1.0],
    ],
    area: 0.71,
    n80: 3,
    n90: 4,
    completeness: 0.12,
  },
  method: "eap-ig",
  ablation: "resample",
};

export const TASKS: DiscoverTask[] = [
  { name: "induction", description: "a repeated random sequence; corrupted: the first half resampled", model: "attn2" },
  { name: "brackets", description: "closing bracket type", model: "mini" },
];

export const INTERVENED: InterveneResult = {
  before: [
    { token: ")", prob: 0.7 },
    { token: ",", prob: 0.2 },
  ],
  after: [
    { token: ",", prob: 0.55 },
    { token: ")", prob: 0.3 },
    { token: " =", prob: 0.05 },
  ],
};

/** What POST /api/graph/intervene answers for INTERVENED: two lists whose entries carry both sides. */
export const INTERVENE_ANSWER = {
  edits: ["ablate 1_17_4"],
  before: [
    { token: ")", id: 11, before: 0.7, after: 0.3 },
    { token: ",", id: 12, before: 0.2, after: 0.55 },
  ],
  after: [
    { token: ",", id: 12, before: 0.2, after: 0.55 },
    { token: ")", id: 11, before: 0.7, after: 0.3 },
    { token: " =", id: 13, before: 0.01, after: 0.05 },
  ],
  kl: 0.4,
};

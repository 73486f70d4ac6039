// The graph and discovery pages keep their whole state in the URL, as the debugger does. The
// view's own part (thresholds, pinned nodes, supernodes) uses Neuronpedia's qParams names
// (pinnedIds, supernodes as [[name, id, ...], ...]) so a link reads the same in both.
import type { DiscoverAblation, DiscoverMethod, EditOp, GraphEditRequest, GraphQuestion } from "../api/graphTypes";
import type { DebuggerState, QuestionKind } from "./debuggerState";
import { SUPER_PREFIX, type Supernode } from "./graphLayout";
import { urlOf } from "./router";

export interface ViewState {
  nodeThreshold: number;
  edgeThreshold: number;
  pinned: string[];
  supernodes: Supernode[];
}

export const VIEW_DEFAULTS: ViewState = { nodeThreshold: 1, edgeThreshold: 0, pinned: [], supernodes: [] };

function fraction(v: string | null, fallback: number, lo: number): number {
  if (v === null || v.trim() === "") return fallback;
  const x = Number(v);
  return Number.isFinite(x) ? Math.min(1, Math.max(lo, x)) : fallback;
}

function csv(v: string | null): string[] {
  return v ? [...new Set(v.split(",").map((s) => s.trim()).filter(Boolean))] : [];
}

export function parseSupernodes(v: string | null): Supernode[] {
  if (!v) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(v);
  } catch {
    return [];
  }
  if (!Array.isArray(raw)) return [];
  const out: Supernode[] = [];
  for (const g of raw) {
    if (!Array.isArray(g) || g.length < 2 || !g.every((s) => typeof s === "string")) continue;
    const [name, ...members] = g as string[];
    if (name.trim() && !out.some((o) => o.name === name)) out.push({ name, members: [...new Set(members)] });
  }
  return out;
}

export function parseView(p: URLSearchParams): ViewState {
  return {
    nodeThreshold: fraction(p.get("nt"), VIEW_DEFAULTS.nodeThreshold, 0.01),
    edgeThreshold: fraction(p.get("et"), VIEW_DEFAULTS.edgeThreshold, 0),
    pinned: csv(p.get("pinnedIds")),
    supernodes: parseSupernodes(p.get("supernodes")),
  };
}

export function writeView(p: URLSearchParams, v: ViewState): void {
  if (v.nodeThreshold !== VIEW_DEFAULTS.nodeThreshold) p.set("nt", String(v.nodeThreshold));
  if (v.edgeThreshold !== VIEW_DEFAULTS.edgeThreshold) p.set("et", String(v.edgeThreshold));
  if (v.pinned.length) p.set("pinnedIds", v.pinned.join(","));
  if (v.supernodes.length) p.set("supernodes", JSON.stringify(v.supernodes.map((s) => [s.name, ...s.members])));
}

// ---------------------------------------------------------------- interventions

/** An edit from the interventions panel: a node id, or a supernode (SUPER_PREFIX + name). */
export interface GraphEdit {
  target: string;
  op: EditOp;
  value: number | null;
}

export function encodeEdit(e: GraphEdit): string {
  return e.op === "steer" ? `steer~${e.target}~${e.value ?? 0}` : `ablate~${e.target}`;
}

export function parseEdit(s: string): GraphEdit | null {
  const [op, target, value] = s.split("~");
  if (!target) return null;
  if (op === "ablate") return { target, op, value: null };
  if (op === "steer") {
    const x = Number(value);
    return Number.isFinite(x) && value !== undefined && value.trim() !== "" ? { target, op, value: x } : null;
  }
  return null;
}

/** Add an edit, or replace the one on the same target. */
export function setEdit(edits: readonly GraphEdit[], e: GraphEdit): GraphEdit[] {
  const i = edits.findIndex((x) => x.target === e.target);
  return i < 0 ? [...edits, e] : edits.map((x, j) => (j === i ? e : x));
}

export function removeEdit(edits: readonly GraphEdit[], target: string): GraphEdit[] {
  return edits.filter((x) => x.target !== target);
}

/** The edits as the API takes them: a supernode's edit applies to each of its members (a node
 * edited both alone and through a group keeps its own edit). */
export function editsToApi(edits: readonly GraphEdit[], groups: readonly Supernode[]): GraphEditRequest[] {
  const out = new Map<string, GraphEditRequest>();
  const one = (node_id: string, e: GraphEdit): GraphEditRequest => (e.op === "steer" ? { node_id, op: "steer", value: e.value ?? 0 } : { node_id, op: "ablate" });
  for (const e of edits) {
    if (!e.target.startsWith(SUPER_PREFIX)) out.set(e.target, one(e.target, e));
  }
  for (const e of edits) {
    if (!e.target.startsWith(SUPER_PREFIX)) continue;
    const g = groups.find((s) => SUPER_PREFIX + s.name === e.target);
    for (const m of g?.members ?? []) if (!out.has(m)) out.set(m, one(m, e));
  }
  return [...out.values()];
}

// ---------------------------------------------------------------- the graph page

export type GraphKind = Exclude<QuestionKind, "attention">;
const GRAPH_KINDS: readonly GraphKind[] = ["top", "logit_diff", "logit", "prob"];

export interface GraphPageState {
  prompt: string;
  kind: GraphKind;
  target: string[];
  distractor: string[];
  maxFeatureNodes: number | null;
  /** a transcoder set by name or path (null: the server picks the model's own) */
  transcoders: string | null;
  edits: GraphEdit[];
  view: ViewState;
}

export function parseGraphPage(p: URLSearchParams): GraphPageState {
  const q = p.get("q");
  const mfn = Number(p.get("mfn"));
  return {
    prompt: p.get("prompt") ?? "",
    kind: q !== null && (GRAPH_KINDS as readonly string[]).includes(q) ? (q as GraphKind) : "logit_diff",
    target: p.getAll("target").filter(Boolean),
    distractor: p.getAll("distractor").filter(Boolean),
    maxFeatureNodes: p.get("mfn") !== null && Number.isInteger(mfn) && mfn > 0 ? mfn : null,
    transcoders: p.get("transcoders") || null,
    edits: p.getAll("edit").map(parseEdit).filter((e): e is GraphEdit => e !== null),
    view: parseView(p),
  };
}

export function graphPageParams(s: GraphPageState): URLSearchParams {
  const p = new URLSearchParams();
  if (s.prompt) p.set("prompt", s.prompt);
  if (s.kind !== "logit_diff") p.set("q", s.kind);
  if (s.kind !== "top") s.target.forEach((t) => p.append("target", t));
  if (s.kind === "logit_diff") s.distractor.forEach((t) => p.append("distractor", t));
  if (s.maxFeatureNodes !== null) p.set("mfn", String(s.maxFeatureNodes));
  if (s.transcoders) p.set("transcoders", s.transcoders);
  s.edits.forEach((e) => p.append("edit", encodeEdit(e)));
  writeView(p, s.view);
  return p;
}

/** The graph page's question as POST /api/graph takes it; undefined for the top logits. */
export function graphQuestion(s: Pick<GraphPageState, "kind" | "target" | "distractor">): GraphQuestion | undefined {
  if (s.kind === "top") return undefined;
  if (s.kind === "logit" || s.kind === "prob") return { kind: s.kind, token: s.target[0] ?? "" };
  return { kind: "logit_diff", target: s.target, distractor: s.distractor };
}

/** Whether the question is complete enough to ask. */
export function graphReady(s: GraphPageState): boolean {
  if (s.prompt === "") return false;
  if (s.kind === "top") return true;
  return s.target.length > 0 && (s.kind !== "logit_diff" || s.distractor.length > 0);
}

/** The graph page for a debugger question (prompt and question carried over); null for attention
 * questions, which have no graph. */
export function graphLinkFor(d: Pick<DebuggerState, "prompt" | "kind" | "target" | "distractor">): string | null {
  if (d.kind === "attention" || d.prompt === "") return null;
  const s: GraphPageState = { prompt: d.prompt, kind: d.kind, target: d.target, distractor: d.distractor, maxFeatureNodes: null, transcoders: null, edits: [], view: VIEW_DEFAULTS };
  return urlOf("/graph", graphPageParams(s));
}

// ---------------------------------------------------------------- the discovery page

export const METHODS: readonly { value: DiscoverMethod; label: string }[] = [
  { value: "eap-ig", label: "EAP-IG (integrated gradients on the inputs)" },
  { value: "eap-ig-act", label: "EAP-IG on the activations" },
  { value: "eap", label: "EAP (edge attribution patching)" },
  { value: "acdc", label: "ACDC (threshold τ)" },
  { value: "patch", label: "exact patching of every edge" },
];

export const ABLATIONS: readonly { value: DiscoverAblation; label: string }[] = [
  { value: "resample", label: "resample (the corrupted prompt)" },
  { value: "mean", label: "mean" },
  { value: "mean-pos", label: "mean per position" },
  { value: "zero", label: "zero" },
];

/** The methods that integrate gradients along a path take a number of steps. */
export const hasSteps = (m: DiscoverMethod): boolean => m === "eap-ig" || m === "eap-ig-act";

export interface DiscoverPageState {
  task: string;
  method: DiscoverMethod;
  ablation: DiscoverAblation;
  steps: number | null;
  tau: number | null;
  topN: number | null;
  view: ViewState;
}

function positive(v: string | null, integer: boolean): number | null {
  if (v === null || v.trim() === "") return null;
  const x = Number(v);
  return Number.isFinite(x) && x > 0 && (!integer || Number.isInteger(x)) ? x : null;
}

export function parseDiscoverPage(p: URLSearchParams): DiscoverPageState {
  const m = p.get("method");
  const a = p.get("ablation");
  return {
    task: p.get("task") ?? "",
    method: METHODS.some((x) => x.value === m) ? (m as DiscoverMethod) : "eap-ig",
    ablation: ABLATIONS.some((x) => x.value === a) ? (a as DiscoverAblation) : "resample",
    steps: positive(p.get("steps"), true),
    tau: positive(p.get("tau"), false),
    topN: positive(p.get("top_n"), true),
    view: parseView(p),
  };
}

export function discoverPageParams(s: DiscoverPageState): URLSearchParams {
  const p = new URLSearchParams();
  if (s.task) p.set("task", s.task);
  p.set("method", s.method);
  p.set("ablation", s.ablation);
  if (s.steps !== null && hasSteps(s.method)) p.set("steps", String(s.steps));
  if (s.tau !== null && s.method === "acdc") p.set("tau", String(s.tau));
  if (s.topN !== null) p.set("top_n", String(s.topN));
  writeView(p, s.view);
  return p;
}

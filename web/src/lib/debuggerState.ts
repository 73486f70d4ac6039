// The debugger page's whole state lives in the URL query string: parse it with defaults, write
// it back omitting defaults, so shared links stay short and reloads show the same view.
import { encodeIntervention, parseInterventions, toApi, type UiIntervention } from "./interventions";
import type { Dir } from "./sort";

// "top" (the top logits, no question) is asked only by the graph page; the debugger never parses it.
export type QuestionKind = "logit_diff" | "logit" | "prob" | "attention" | "top";
export type Granularity = "component" | "position" | "pair";
export type Column = "activation" | "write_norm" | "direct_effect" | "total_effect" | "ablation_effect";
export type Side = "left" | "right" | "diff";
export type TokenColumn = "embed" | "pos_embed" | "heads_query" | "heads_key" | "neurons" | "latents";

export interface DebuggerState {
  prompt: string;
  kind: QuestionKind;
  target: string[];
  distractor: string[];
  head: string; // attention questions: L1.H2
  qpos: number | null; // null: last token
  kpos: number;
  prompt2: string; // comparison prompt ("" = none)
  side: Side;
  topk: number;
  measure: number;
  gran: Granularity;
  sort: Column;
  dir: Dir;
  abs: boolean;
  kinds: string[]; // empty = every kind
  iv: UiIntervention[]; // interventions, in the order they apply
  trace: string[]; // trace path (hops like L1.H2@5:k)
  tdir: "upstream" | "downstream";
  color: TokenColumn;
}

export const DEFAULTS: DebuggerState = {
  prompt: "",
  kind: "logit_diff",
  target: [],
  distractor: [],
  head: "L0.H0",
  qpos: null,
  kpos: 0,
  prompt2: "",
  side: "right",
  topk: 10,
  measure: 8,
  gran: "component",
  sort: "total_effect",
  dir: "desc",
  abs: true,
  kinds: [],
  iv: [],
  trace: [],
  tdir: "upstream",
  color: "embed",
};

const KINDS: QuestionKind[] = ["logit_diff", "logit", "prob", "attention"];
const GRANS: Granularity[] = ["component", "position", "pair"];
const COLUMNS: Column[] = ["activation", "write_norm", "direct_effect", "total_effect", "ablation_effect"];
const SIDES: Side[] = ["left", "right", "diff"];
const TOKEN_COLUMNS: TokenColumn[] = ["embed", "pos_embed", "heads_query", "heads_key", "neurons", "latents"];

function pick<T extends string>(v: string | null, allowed: readonly T[], fallback: T): T {
  return v !== null && (allowed as readonly string[]).includes(v) ? (v as T) : fallback;
}

function int(v: string | null, fallback: number, lo: number, hi: number): number {
  if (v === null || v.trim() === "") return fallback;
  const n = Number(v);
  return Number.isInteger(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
}

function list(params: URLSearchParams, name: string): string[] {
  return params.getAll(name).filter((s) => s !== "");
}

function csv(v: string | null): string[] {
  return v ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

export function parseDebugger(params: URLSearchParams): DebuggerState {
  const d = DEFAULTS;
  const qpos = params.get("qpos");
  return {
    prompt: params.get("prompt") ?? d.prompt,
    kind: pick(params.get("q"), KINDS, d.kind),
    target: list(params, "target"),
    distractor: list(params, "distractor"),
    head: params.get("head") ?? d.head,
    qpos: qpos === null || qpos === "" ? null : int(qpos, 0, -4096, 4096),
    kpos: int(params.get("kpos"), d.kpos, -4096, 4096),
    prompt2: params.get("prompt2") ?? d.prompt2,
    side: pick(params.get("side"), SIDES, d.side),
    topk: int(params.get("k"), d.topk, 1, 50),
    measure: int(params.get("measure"), d.measure, 0, 16),
    gran: pick(params.get("gran"), GRANS, d.gran),
    sort: pick(params.get("sort"), COLUMNS, d.sort),
    dir: pick(params.get("dir"), ["asc", "desc"] as const, d.dir),
    abs: params.has("abs") ? params.get("abs") !== "0" : d.abs,
    kinds: csv(params.get("kinds")),
    iv: parseInterventions(params),
    trace: csv(params.get("trace")),
    tdir: pick(params.get("tdir"), ["upstream", "downstream"] as const, d.tdir),
    color: pick(params.get("color"), TOKEN_COLUMNS, d.color),
  };
}

export function debuggerParams(s: DebuggerState): URLSearchParams {
  const p = new URLSearchParams();
  const d = DEFAULTS;
  if (s.prompt) p.set("prompt", s.prompt);
  if (s.kind !== d.kind) p.set("q", s.kind);
  if (s.kind === "attention") {
    p.set("head", s.head);
    if (s.qpos !== null) p.set("qpos", String(s.qpos));
    p.set("kpos", String(s.kpos));
  } else {
    s.target.forEach((t) => p.append("target", t));
    if (s.kind === "logit_diff") s.distractor.forEach((t) => p.append("distractor", t));
  }
  if (s.prompt2) p.set("prompt2", s.prompt2);
  if (s.prompt2 && s.side !== d.side) p.set("side", s.side);
  if (s.topk !== d.topk) p.set("k", String(s.topk));
  if (s.measure !== d.measure) p.set("measure", String(s.measure));
  if (s.gran !== d.gran) p.set("gran", s.gran);
  if (s.sort !== d.sort) p.set("sort", s.sort);
  if (s.dir !== d.dir) p.set("dir", s.dir);
  if (s.abs !== d.abs) p.set("abs", s.abs ? "1" : "0");
  if (s.kinds.length) p.set("kinds", s.kinds.join(","));
  s.iv.forEach((iv) => p.append(...encodeIntervention(iv)));
  if (s.trace.length) p.set("trace", s.trace.join(","));
  if (s.tdir !== d.tdir) p.set("tdir", s.tdir);
  if (s.color !== d.color) p.set("color", s.color);
  return p;
}

/** The question as the API takes it. */
export function questionOf(s: DebuggerState):
  | { kind: "logit_diff"; target: string[]; distractor: string[] }
  | { kind: "logit" | "prob"; token: string }
  | { kind: "attention"; layer: number; head: number; query_pos: number | null; key_pos: number } {
  if (s.kind === "attention") {
    const m = /^L(\d+)\.H(\d+)$/i.exec(s.head.trim());
    return { kind: "attention", layer: m ? +m[1] : -1, head: m ? +m[2] : -1, query_pos: s.qpos, key_pos: s.kpos };
  }
  if (s.kind === "logit" || s.kind === "prob") return { kind: s.kind, token: s.target[0] ?? "" };
  return { kind: "logit_diff", target: s.target, distractor: s.distractor };
}

/** The interventions as the API takes them (null when none applies). */
export function interventionsOf(s: DebuggerState): ReturnType<typeof toApi> {
  return toApi(s.iv, s.prompt, s.prompt2);
}

/** Add or remove `node` from a list (ablations). */
export function toggle(list: string[], node: string): string[] {
  return list.includes(node) ? list.filter((n) => n !== node) : [...list, node];
}

// The maths of the graph view, shared by attribution graphs and discovered circuits: one plain
// graph shape for both, positions by layer (rows, embeddings at the bottom, logits on top) and
// token position (columns), client-side threshold filtering, supernodes drawn as one node, and
// the colour and width scale of signed edge weights.
import type { AttributionGraph, Circuit, GraphNode } from "../api/graphTypes";
import { componentOf, hasPage, parseNode } from "./nodes";

export type VKind = "embedding" | "feature" | "error" | "logit" | "head" | "mlp" | "node" | "supernode";
export type Receiver = "q" | "k" | "v";

export interface VNode {
  id: string;
  kind: VKind;
  /** 0 = embeddings (bottom) … rows.length - 1 = logits (top) */
  row: number;
  /** token position (attribution graphs); 0 for circuits, which have no positions */
  col: number;
  /** order inside its (row, col) cell: smaller first (left) */
  order: number;
  label: string;
  title: string;
  influence: number | null;
  activation: number | null;
  /** a lenscope node id with a page at /node/{id}, or null */
  page: string | null;
  members: string[];
}

export interface VLink {
  source: string;
  target: string;
  weight: number;
  head: string | null;
  receiver: Receiver | null;
}

export interface VGraph {
  nodes: VNode[];
  links: VLink[];
  /** row labels, bottom to top */
  rows: string[];
  /** column labels (the prompt's tokens), or [] when nodes have no position */
  columns: string[];
}

const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);

/** What a Neuronpedia node is, from its feature_type. */
export function kindOfFeatureType(t: string): VKind {
  const s = t.toLowerCase();
  if (s === "embedding") return "embedding";
  if (s === "logit") return "logit";
  if (s.includes("error")) return "error";
  return "feature";
}

/** The transcoder feature index in a feature node id `layer_feature_pos` (circuit-tracer's). */
export function featureIndex(n: Pick<GraphNode, "node_id" | "feature">): number {
  const parts = n.node_id.split("_");
  const f = parts.length === 3 ? Number(parts[1]) : NaN;
  return Number.isInteger(f) ? f : n.feature;
}

/** A Neuronpedia attribution graph as the view's graph. */
export function fromAttribution(g: AttributionGraph): VGraph {
  const kinds = g.nodes.map((n) => kindOfFeatureType(String(n.feature_type)));
  let nLayers = 0;
  g.nodes.forEach((n, i) => {
    const l = Number(n.layer);
    if (!Number.isInteger(l)) return;
    if (kinds[i] === "logit") nLayers = Math.max(nLayers, l - 1); // circuit-tracer: n_layers + 1
    else if (kinds[i] === "feature" || kinds[i] === "error") nLayers = Math.max(nLayers, l + 1);
  });
  const tokens = g.metadata.prompt_tokens.map(String);
  const top = nLayers + 1;
  const nodes: VNode[] = g.nodes.map((n, i) => {
    const kind = kinds[i];
    const layer = Number(n.layer);
    const row = kind === "embedding" ? 0 : kind === "logit" ? top : Number.isInteger(layer) ? layer + 1 : 1;
    const influence = num(n.influence);
    let label: string;
    if (kind === "embedding") label = tokens[n.ctx_idx] ?? `E${n.ctx_idx}`;
    else if (kind === "logit") label = /^Output "(.*)" \(p=/s.exec(n.clerp ?? "")?.[1] ?? n.node_id;
    else if (kind === "error") label = "err";
    else label = `F${featureIndex(n)}`;
    const where = kind === "embedding" || kind === "logit" ? "" : ` at layer ${n.layer}, position ${n.ctx_idx}`;
    const title = (n.clerp ? n.clerp : kind === "error" ? "MLP reconstruction error" : n.node_id) + where;
    return {
      id: n.node_id,
      kind,
      row,
      col: Number.isInteger(n.ctx_idx) ? n.ctx_idx : 0,
      order: kind === "logit" ? -(num(n.token_prob) ?? 0) : (influence ?? 1),
      label,
      title,
      influence,
      activation: num(n.activation),
      page: n.node_page ?? null,
      members: [],
    };
  });
  const links = g.links.map((l) => ({ source: l.source, target: l.target, weight: l.weight, head: l.head ?? null, receiver: null }));
  const rows = ["emb", ...Array.from({ length: nLayers }, (_, l) => `L${l}`), "logits"];
  return { nodes, links, rows, columns: tokens };
}

function circuitKind(kind: string, id: string): VKind {
  const k = kind.toLowerCase();
  if (k.includes("embed") || k === "pos" || k === "tokens") return "embedding";
  if (k.includes("logit") || k.includes("unembed") || k === "output") return "logit";
  if (k.includes("head") || k.includes("attn")) return "head";
  if (k.includes("mlp")) return "mlp";
  if (k.includes("neuron") || k.includes("latent") || k.includes("feature")) return "feature";
  return parseNode(id)?.kind === "head" ? "head" : "node";
}

/** A discovered circuit as the view's graph: one row per layer, heads then MLPs within it. */
export function fromCircuit(c: Circuit): VGraph {
  const kinds = c.nodes.map((n) => circuitKind(String(n.kind), n.node_id));
  // every layer gets a row: the logits' layer is the model's n_layers when the route says so
  const nLayers = c.nodes.reduce((m, n, i) => (typeof n.layer !== "number" ? m : Math.max(m, kinds[i] === "logit" ? n.layer : n.layer + 1)), 0);
  const nodes: VNode[] = c.nodes.map((n, i) => {
    const kind = kinds[i];
    const layer = typeof n.layer === "number" ? n.layer : 0;
    const row = kind === "embedding" ? 0 : kind === "logit" ? nLayers + 1 : layer + 1;
    const ref = parseNode(n.node_id);
    const order = kind === "head" ? (ref?.index ?? 0) : kind === "mlp" ? 1e6 : kind === "feature" ? 2e6 + (ref?.index ?? 0) : 0;
    const page = n.node_page ?? (hasPage(n.node_id) ? componentOf(n.node_id) : null);
    return { id: n.node_id, kind, row, col: 0, order, label: n.node_id, title: `${n.node_id} (${n.kind})`, influence: null, activation: null, page, members: [] };
  });
  const links = c.links.map((l) => ({ source: l.source, target: l.target, weight: l.weight, head: null, receiver: l.receiver ?? null }));
  const rows = ["emb", ...Array.from({ length: nLayers }, (_, l) => `L${l}`), "logits"];
  return { nodes, links, rows, columns: [] };
}

// ---------------------------------------------------------------- positions

export interface Point {
  x: number;
  y: number;
}

export interface Layout {
  pos: Map<string, Point>;
  width: number;
  height: number;
  colWidth: number;
  /** y of each row (index = row) */
  rowY: number[];
  /** x of each column's centre */
  colX: number[];
  left: number;
}

export const LAYOUT = { rowHeight: 72, left: 64, right: 16, top: 64, bottom: 56, minColWidth: 60, minWidth: 720 };

/** Node positions: y by row (row 0 at the bottom), x by column; nodes sharing a cell spread
 * evenly across it in `order`. `gap` is the room one node needs across. */
export function layout(g: VGraph, gap = 16): Layout {
  const cells = new Map<string, VNode[]>();
  let maxCol = 0;
  for (const n of g.nodes) {
    const key = `${n.row}:${n.col}`;
    const cell = cells.get(key);
    if (cell) cell.push(n);
    else cells.set(key, [n]);
    maxCol = Math.max(maxCol, n.col);
  }
  const nCols = Math.max(1, g.columns.length, maxCol + 1);
  const crowd = Math.max(0, ...[...cells.values()].map((c) => c.length));
  const { rowHeight, left, right, top, bottom, minColWidth, minWidth } = LAYOUT;
  const colWidth = Math.max(minColWidth, (crowd + 1) * gap, (minWidth - left - right) / nCols);
  const nRows = Math.max(1, g.rows.length);
  const rowY = Array.from({ length: nRows }, (_, r) => top + (nRows - 1 - r) * rowHeight);
  const colX = Array.from({ length: nCols }, (_, c) => left + (c + 0.5) * colWidth);
  const pos = new Map<string, Point>();
  for (const cell of cells.values()) {
    const sorted = [...cell].sort((a, b) => a.order - b.order || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    sorted.forEach((n, i) => {
      const x0 = left + n.col * colWidth;
      pos.set(n.id, { x: x0 + ((i + 1) * colWidth) / (sorted.length + 1), y: top + (nRows - 1 - n.row) * rowHeight });
    });
  }
  return { pos, width: left + nCols * colWidth + right, height: top + (nRows - 1) * rowHeight + bottom, colWidth, rowY, colX, left };
}

// ---------------------------------------------------------------- filtering

export interface Thresholds {
  /** keep feature and error nodes whose cumulative influence is at most this (0..1] */
  nodeThreshold: number;
  /** keep links whose |weight| is at least this fraction of the largest |weight| [0..1] */
  edgeThreshold: number;
  pinned: readonly string[];
}

const ALWAYS: ReadonlySet<VKind> = new Set(["embedding", "logit"]);

/** The part of the graph the sliders keep. Embeddings, logits and pinned nodes always stay;
 * a node left with no link (an orphan) goes, as circuit-tracer's pruning drops them. */
export function filterGraph(g: VGraph, t: Thresholds): VGraph {
  const pinned = new Set(t.pinned);
  const keep = new Set(
    g.nodes.filter((n) => ALWAYS.has(n.kind) || pinned.has(n.id) || n.influence === null || n.influence <= t.nodeThreshold).map((n) => n.id),
  );
  const max = maxAbsWeight(g.links);
  const floor = t.edgeThreshold * max;
  const links = g.links.filter((l) => keep.has(l.source) && keep.has(l.target) && Math.abs(l.weight) >= floor);
  const linked = new Set(links.flatMap((l) => [l.source, l.target]));
  const nodes = g.nodes.filter((n) => keep.has(n.id) && (ALWAYS.has(n.kind) || pinned.has(n.id) || linked.has(n.id)));
  return { ...g, nodes, links };
}

export function maxAbsWeight(links: readonly VLink[]): number {
  let m = 0;
  for (const l of links) if (Number.isFinite(l.weight)) m = Math.max(m, Math.abs(l.weight));
  return m;
}

// ---------------------------------------------------------------- supernodes

export interface Supernode {
  name: string;
  members: string[];
}

export const SUPER_PREFIX = "supernode:";

/** Group `members` as a supernode called `name`: a node belongs to one group at most (it leaves
 * any other), a group of the same name is replaced, and groups left empty vanish. */
export function groupNodes(groups: readonly Supernode[], name: string, members: readonly string[]): Supernode[] {
  const label = name.trim();
  const mine = [...new Set(members)];
  const taken = new Set(mine);
  const rest = groups
    .filter((g) => g.name !== label)
    .map((g) => ({ name: g.name, members: g.members.filter((m) => !taken.has(m)) }))
    .filter((g) => g.members.length > 0);
  return label && mine.length ? [...rest, { name: label, members: mine }] : rest;
}

export function ungroup(groups: readonly Supernode[], name: string): Supernode[] {
  return groups.filter((g) => g.name !== name);
}

/** Why `name` cannot name a new group of `members`, or null. */
export function groupProblem(groups: readonly Supernode[], name: string, members: readonly string[]): string | null {
  if (!name.trim()) return "give the group a name";
  if (new Set(members).size < 2) return "pin at least two nodes to group them";
  if (groups.some((g) => g.name === name.trim())) return `there is already a group called ${name.trim()}`;
  return null;
}

/** Each group drawn as one node at its visible members' centroid; links to and from members
 * become links of the group (summed per end pair and receiver), links inside a group vanish. */
export function collapseSupernodes(g: VGraph, groups: readonly Supernode[], pos: ReadonlyMap<string, Point>): { graph: VGraph; pos: Map<string, Point> } {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const owner = new Map<string, string>();
  const out = new Map(pos);
  const supers: VNode[] = [];
  for (const grp of groups) {
    const seen = grp.members.filter((m) => byId.has(m) && !owner.has(m));
    if (!seen.length) continue;
    const id = SUPER_PREFIX + grp.name;
    seen.forEach((m) => owner.set(m, id));
    const pts = seen.map((m) => pos.get(m)).filter((p): p is Point => p !== undefined);
    if (pts.length) out.set(id, { x: mean(pts.map((p) => p.x)), y: mean(pts.map((p) => p.y)) });
    const ms = seen.map((m) => byId.get(m)!);
    supers.push({
      id,
      kind: "supernode",
      row: Math.max(...ms.map((m) => m.row)),
      col: Math.min(...ms.map((m) => m.col)),
      order: 0,
      label: grp.name,
      title: `${grp.name}: ${seen.join(", ")}`,
      influence: null,
      activation: null,
      page: null,
      members: seen,
    });
  }
  const merged = new Map<string, VLink>();
  for (const l of g.links) {
    const source = owner.get(l.source) ?? l.source;
    const target = owner.get(l.target) ?? l.target;
    if (source === target) continue;
    const key = `${source}\u0000${target}\u0000${l.receiver ?? ""}`;
    const had = merged.get(key);
    if (had) merged.set(key, { ...had, weight: had.weight + l.weight, head: had.head === l.head ? had.head : null });
    else merged.set(key, { ...l, source, target });
  }
  const nodes = [...g.nodes.filter((n) => !owner.has(n.id)), ...supers];
  return { graph: { ...g, nodes, links: [...merged.values()] }, pos: out };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

// ---------------------------------------------------------------- edge style

export interface EdgeStyle {
  width: number;
  color: string;
  opacity: number;
}

export const POSITIVE = "#2563eb";
export const NEGATIVE = "#dc2626";

/** Width and opacity grow with |weight| / max (saturating at max); blue for positive weights,
 * red for negative ones, as the debugger's effect colours. */
export function edgeStyle(weight: number, max: number): EdgeStyle {
  const t = max > 0 && Number.isFinite(weight) ? Math.min(1, Math.abs(weight) / max) : 0;
  return { width: 0.5 + 4.5 * t, color: weight < 0 ? NEGATIVE : POSITIVE, opacity: 0.2 + 0.7 * t };
}

/** A path from a source below to a target above: a vertical S-curve. */
export function edgePath(a: Point, b: Point): string {
  const dy = (b.y - a.y) / 2;
  return `M${a.x.toFixed(1)},${a.y.toFixed(1)} C${a.x.toFixed(1)},${(a.y + dy).toFixed(1)} ${b.x.toFixed(1)},${(b.y - dy).toFixed(1)} ${b.x.toFixed(1)},${b.y.toFixed(1)}`;
}

/** Where a link enters a head: its query, key and value ports side by side. */
export const PORT_OFFSET: Record<Receiver, number> = { q: -9, k: 0, v: 9 };

// One graph view for attribution graphs and discovered circuits: nodes by layer (rows) and token
// position (columns), edges by signed weight, thresholds filtering in the browser, hover for a
// node's explanation, click through to its node page, pin nodes and group pinned nodes into named
// supernodes (each drawn as one node). The view's state (thresholds, pins, groups) is the caller's
// (the pages keep it in the URL).
import { useMemo, useState, type KeyboardEvent, type MouseEvent } from "react";
import type { NodeSummary } from "../api/types";
import { fmt, showToken } from "../lib/format";
import {
  collapseSupernodes,
  edgePath,
  edgeStyle,
  filterGraph,
  groupNodes,
  groupProblem,
  layout,
  maxAbsWeight,
  PORT_OFFSET,
  ungroup,
  type Point,
  type VGraph,
  type VNode,
} from "../lib/graphLayout";
import type { ViewState } from "../lib/graphState";
import { componentOf } from "../lib/nodes";
import { navigate } from "../lib/router";

interface Props {
  graph: VGraph;
  view: ViewState;
  onView: (v: ViewState) => void;
  summaries?: Record<string, NodeSummary>;
  /** room one node needs across its cell (wider for circuits' labelled heads) */
  gap?: number;
  testId?: string;
}

type Mode = "page" | "pin";

export function GraphView({ graph, view, onView, summaries = {}, gap = 16, testId = "graph-view" }: Props) {
  const [hover, setHover] = useState<string | null>(null);
  const [mode, setMode] = useState<Mode>("page");
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<string | null>(null);

  const base = useMemo(() => layout(graph, gap), [graph, gap]);
  const max = useMemo(() => maxAbsWeight(graph.links), [graph]);
  const shown = useMemo(
    () => filterGraph(graph, { nodeThreshold: view.nodeThreshold, edgeThreshold: view.edgeThreshold, pinned: view.pinned }),
    [graph, view.nodeThreshold, view.edgeThreshold, view.pinned],
  );
  const { graph: drawn, pos } = useMemo(() => collapseSupernodes(shown, view.supernodes, base.pos), [shown, view.supernodes, base.pos]);
  const byId = useMemo(() => new Map(drawn.nodes.map((n) => [n.id, n])), [drawn]);
  const pinned = new Set(view.pinned);
  const hasInfluence = graph.nodes.some((n) => n.influence !== null);
  const grouped = new Set(view.supernodes.flatMap((s) => s.members));
  const loose = view.pinned.filter((p) => !grouped.has(p));

  const togglePin = (id: string) =>
    onView({ ...view, pinned: pinned.has(id) ? view.pinned.filter((p) => p !== id) : [...view.pinned, id] });
  const activate = (n: VNode, e: MouseEvent | KeyboardEvent) => {
    if (n.kind === "supernode") return;
    if (mode === "pin" || e.shiftKey) togglePin(n.id);
    else if (n.page) navigate(`/node/${encodeURIComponent(n.page)}`);
  };
  const group = () => {
    const why = groupProblem(view.supernodes, name, loose);
    setProblem(why);
    if (why) return;
    onView({ ...view, supernodes: groupNodes(view.supernodes, name, loose) });
    setName("");
  };

  const touching = (src: string, dst: string) => hover === null || hover === src || hover === dst;
  const at = (id: string): Point | undefined => pos.get(id);
  const hovered = hover ? byId.get(hover) : undefined;

  return (
    <div className="graph-view" data-testid={testId}>
      <div className="graph-controls">
        {hasInfluence && (
          <label title="keep feature and error nodes whose cumulative influence is at most this (smaller keeps only the most influential)">
            <span>node influence ≤ {fmt(view.nodeThreshold)}</span>
            <input
              type="range"
              name="node-threshold"
              min={0.01}
              max={1}
              step={0.01}
              value={view.nodeThreshold}
              onChange={(e) => onView({ ...view, nodeThreshold: Number(e.target.value) })}
            />
          </label>
        )}
        <label title="keep edges whose |weight| is at least this fraction of the largest">
          <span>edge |weight| ≥ {fmt(view.edgeThreshold * max)} ({Math.round(view.edgeThreshold * 100)}% of max)</span>
          <input
            type="range"
            name="edge-threshold"
            min={0}
            max={1}
            step={0.01}
            value={view.edgeThreshold}
            onChange={(e) => onView({ ...view, edgeThreshold: Number(e.target.value) })}
          />
        </label>
        <span className="counts" data-testid="graph-counts">
          {shown.nodes.length} of {graph.nodes.length} nodes · {shown.links.length} of {graph.links.length} edges
        </span>
        <span className="tabs" role="group" aria-label="a click on a node">
          <button type="button" className={mode === "page" ? "active" : undefined} aria-pressed={mode === "page"} onClick={() => setMode("page")} data-mode="page">
            click opens its page
          </button>
          <button type="button" className={mode === "pin" ? "active" : undefined} aria-pressed={mode === "pin"} onClick={() => setMode("pin")} data-mode="pin">
            click pins
          </button>
        </span>
        <span className="legend">
          <span style={{ color: "#2563eb" }}>━ positive</span> <span style={{ color: "#dc2626" }}>━ negative</span>
          {graph.links.some((l) => l.receiver) && <span> · edges enter a head at its q | k | v</span>}
        </span>
      </div>

      <div className="graph-pins" data-testid="graph-pins">
        <span className="muted">Pinned{loose.length ? "" : " (shift+click or “click pins”)"}:</span>
        {loose.map((p) => (
          <span key={p} className="chip" data-pinned={p}>
            <code>{byId.get(p)?.label ?? p}</code>
            <button type="button" className="link" aria-label={`unpin ${p}`} onClick={() => togglePin(p)}>
              ×
            </button>
          </span>
        ))}
        {loose.length >= 2 && (
          <span className="group-form">
            <input name="group-name" value={name} placeholder="group name" size={12} onChange={(e) => setName(e.target.value)} onKeyDown={(e) => e.key === "Enter" && group()} />
            <button type="button" onClick={group} data-action="group">
              group pinned
            </button>
          </span>
        )}
        {problem && <span className="warn">{problem}</span>}
        {view.supernodes.map((s) => (
          <span key={s.name} className="chip super" data-supernode={s.name} title={s.members.join(", ")}>
            ▣ {s.name} ({s.members.length})
            <button type="button" className="link" aria-label={`ungroup ${s.name}`} onClick={() => onView({ ...view, supernodes: ungroup(view.supernodes, s.name) })}>
              ungroup
            </button>
          </span>
        ))}
      </div>

      <div className="graph-canvas">
        <svg width={base.width} height={base.height} role="group" aria-label="graph: nodes by layer and position" onMouseLeave={() => setHover(null)}>
          {graph.rows.map((r, i) => (
            <text key={r} x={base.left - 10} y={base.rowY[i] + 4} textAnchor="end" className="row-label">
              {r}
            </text>
          ))}
          {graph.columns.map((t, c) => (
            <text key={c} x={base.colX[c]} y={base.height - 30} textAnchor="middle" className="col-label" data-col={c}>
              <title>{`${c}: ${showToken(t)}`}</title>
              {short(showToken(t), Math.max(3, Math.floor(base.colWidth / 8)))}
            </text>
          ))}
          <g className="edges">
            {drawn.links.map((l) => {
              const a = at(l.source);
              const b0 = at(l.target);
              if (!a || !b0) return null;
              const tgt = byId.get(l.target);
              const b = l.receiver && tgt?.kind === "head" ? { x: b0.x + PORT_OFFSET[l.receiver], y: b0.y + 8 } : b0;
              const st = edgeStyle(l.weight, max);
              return (
                <path
                  key={`${l.source}>${l.target}>${l.receiver ?? ""}`}
                  d={edgePath(a, b)}
                  stroke={st.color}
                  strokeWidth={st.width}
                  strokeOpacity={touching(l.source, l.target) ? st.opacity : 0.06}
                  fill="none"
                  data-source={l.source}
                  data-target={l.target}
                  data-weight={l.weight}
                  data-receiver={l.receiver ?? undefined}
                >
                  <title>{`${l.source} → ${l.target}${l.receiver ? ` (${l.receiver})` : ""}: ${fmt(l.weight)}${l.head ? ` through ${l.head}` : ""}`}</title>
                </path>
              );
            })}
          </g>
          <g className="nodes">
            {drawn.nodes.map((n) => {
              const p = at(n.id);
              if (!p) return null;
              return (
                <g
                  key={n.id}
                  transform={`translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`}
                  className={`gnode ${n.kind}${pinned.has(n.id) ? " pinned" : ""}${hover === n.id ? " hover" : ""}`}
                  data-node={n.id}
                  data-kind={n.kind}
                  data-page={n.page ?? undefined}
                  role="button"
                  tabIndex={0}
                  aria-label={`${n.label}: ${n.title}`}
                  onMouseEnter={() => setHover(n.id)}
                  onFocus={() => setHover(n.id)}
                  onClick={(e) => activate(n, e)}
                  onKeyDown={(e) => {
                    if (e.key === "Enter" || e.key === " ") {
                      e.preventDefault();
                      activate(n, e);
                    }
                  }}
                >
                  <Shape n={n} />
                </g>
              );
            })}
          </g>
        </svg>
        {hovered && at(hovered.id) && <HoverCard n={hovered} p={at(hovered.id)!} summary={hovered.page ? summaries[componentOf(hovered.page)] : undefined} width={base.width} />}
      </div>
    </div>
  );
}

function short(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function Shape({ n }: { n: VNode }) {
  switch (n.kind) {
    case "feature":
      return <circle r={6} />;
    case "error":
      return <rect x={-5} y={-5} width={10} height={10} />;
    case "embedding":
      return <rect x={-6} y={-6} width={12} height={12} rx={2} />;
    case "logit":
      // a small box with its token slanted above it: neighbouring logits never overlap
      return (
        <>
          <rect x={-7} y={-7} width={14} height={14} rx={3} />
          <text x={2} y={-11} transform="rotate(-35 2 -11)" className="logit-label">
            {short(showToken(n.label), 12)}
          </text>
        </>
      );
    case "supernode": {
      const w = Math.min(160, 24 + 7 * n.label.length);
      return (
        <>
          <rect x={-w / 2} y={-11} width={w} height={22} rx={3} />
          <text y={4} textAnchor="middle">
            {short(n.label, 20)}
          </text>
        </>
      );
    }
    case "head":
    case "mlp":
    case "node":
      return (
        <>
          <rect x={-22} y={-8} width={44} height={16} rx={3} />
          <text y={4} textAnchor="middle" className="glabel">
            {short(n.label, 8)}
          </text>
        </>
      );
  }
}

function HoverCard({ n, p, summary, width }: { n: VNode; p: Point; summary?: NodeSummary; width: number }) {
  const left = Math.min(p.x + 14, width - 300);
  return (
    <div className="graph-hover" role="tooltip" data-testid="graph-hover" style={{ left: Math.max(0, left), top: p.y + 14 }}>
      <strong>{n.kind === "supernode" ? `▣ ${n.label}` : n.label}</strong> <span className="muted">{n.kind}</span>
      <div className="title">{n.title}</div>
      {summary?.explanation?.text && (
        <div className="explanation" data-testid="graph-hover-explanation">
          {summary.explanation.text}
          {summary.explanation.score !== null && <span className="muted"> (score {fmt(summary.explanation.score)})</span>}
        </div>
      )}
      {summary && summary.top_tokens.length > 0 && (
        <div className="muted">top tokens: {summary.top_tokens.slice(0, 6).map(showToken).join("  ")}</div>
      )}
      <div className="muted">
        {n.activation !== null && <>activation {fmt(n.activation)} · </>}
        {n.influence !== null && <>influence {fmt(n.influence)} · </>}
        {n.members.length > 0 && <>{n.members.length} members · </>}
        {n.page ? `click: ${n.page}'s page` : n.kind === "supernode" ? "a group of pinned nodes" : "no node page"}
      </div>
    </div>
  );
}

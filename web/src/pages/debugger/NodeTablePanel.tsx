// The node table: one granularity at a time, filtered by kind, sortable by every column.
import type { NodeRow, NodeSummary } from "../../api/types";
import { SortTable, type Col } from "../../components/SortTable";
import type { Column, DebuggerState, Granularity } from "../../lib/debuggerState";
import { compactToken, showToken } from "../../lib/format";
import { componentOf } from "../../lib/nodes";
import { NodeActions, NodeLink } from "./NodeActions";

interface Props {
  rows: NodeRow[];
  state: DebuggerState;
  kinds: string[];
  summaries: Record<string, NodeSummary>;
  update: (patch: Partial<DebuggerState>) => void;
  ablated: string[];
  steered: string[];
  onAblate: (node: string) => void;
  onSteer: (node: string, activation?: number | null) => void;
  onTrace: (hop: string) => void;
  onDownstream: (node: string) => void;
  onAttend: (node: string) => void;
}

const GRANS: { g: Granularity; label: string }[] = [
  { g: "component", label: "components" },
  { g: "position", label: "at each position" },
  { g: "pair", label: "head token pairs" },
];

export function tokenCell(r: { token?: string | null; key_token?: string | null; position?: number | null; key_position?: number | null }) {
  if (r.position === null || r.position === undefined) return null;
  const q = `${r.position}:${showToken(r.token)}`;
  return r.key_position === null || r.key_position === undefined ? q : `${q} ← ${r.key_position}:${showToken(r.key_token)}`;
}

export function SummaryCell({ s }: { s: NodeSummary | undefined }) {
  if (!s) return null;
  const e = s.explanation;
  return (
    <span className="summary">
      {s.boosts.length > 0 && (
        // long whitespace tokens (↵ and a run of ·) are shortened and the line is clipped to the
        // cell; the tooltip has them in full
        <span className="top-tokens" title={`output tokens this node boosts (from its records): ${s.boosts.slice(0, 4).map(showToken).join("  ")}`}>
          ↑ {s.boosts.slice(0, 4).map(compactToken).join(" ")}
        </span>
      )}
      {e && (
        <span className="explanation" title={e.text}>
          {e.text.length > 90 ? `${e.text.slice(0, 90)}…` : e.text}
          {e.score !== null && e.score !== undefined && <em> (score {e.score.toFixed(2)})</em>}
        </span>
      )}
    </span>
  );
}

export function NodeTablePanel({ rows, state, kinds, summaries, update, ablated, steered, onAblate, onSteer, onTrace, onDownstream, onAttend }: Props) {
  const counts = Object.fromEntries(GRANS.map(({ g }) => [g, rows.filter((r) => r.granularity === g).length]));
  const shown = rows.filter((r) => r.granularity === state.gran && (state.kinds.length === 0 || state.kinds.includes(r.kind)));
  const num = (key: Column, label: string, title: string): Col<NodeRow> => ({ key, label, title, value: (r) => r[key] ?? null });
  const cols: Col<NodeRow>[] = [
    { key: "node", label: "node", render: (r) => <NodeLink node={r.node} /> },
    { key: "token", label: "token", render: (r) => <span className="tokcell">{tokenCell(r)}</span> },
    { key: "summary", label: "top tokens · explanation", render: (r) => <SummaryCell s={summaries[componentOf(r.node)]} /> },
    num("activation", "activation", "the node's activation at the answer position (heads: |z|, pairs: attention)"),
    num("write_norm", "write norm", "norm of what the node writes into the residual stream"),
    num("direct_effect", "direct effect", "its write read straight through the frozen final norm and unembedding"),
    num("total_effect", "est. total effect", "activation × gradient: first-order estimate of its whole effect"),
    num("ablation_effect", "measured ablation", "value − value with the node zero-ablated (measured for the top rows)"),
  ];
  return (
    <section className="panel" aria-label="node table">
      <div className="table-controls">
        <div role="radiogroup" aria-label="granularity" className="tabs">
          {GRANS.map(({ g, label }) => (
            <button key={g} type="button" role="radio" aria-checked={state.gran === g} className={state.gran === g ? "active" : undefined} onClick={() => update({ gran: g })}>
              {label} <small>({counts[g]})</small>
            </button>
          ))}
        </div>
        <fieldset className="kinds">
          <legend>kinds</legend>
          {kinds.map((k) => (
            <label key={k} className="check">
              <input
                type="checkbox"
                checked={state.kinds.length === 0 || state.kinds.includes(k)}
                onChange={(e) => {
                  const all = state.kinds.length === 0 ? kinds : state.kinds;
                  const next = e.target.checked ? [...all, k] : all.filter((x) => x !== k);
                  update({ kinds: next.length === kinds.length ? [] : next });
                }}
              />
              {k}
            </label>
          ))}
        </fieldset>
        <label className="small">
          top-k
          <input
            type="number"
            name="topk"
            min={1}
            max={50}
            defaultValue={state.topk}
            key={state.topk}
            onKeyDown={(e) => {
              if (e.key === "Enter") update({ topk: Math.max(1, Math.min(50, Number((e.target as HTMLInputElement).value) || 10)) });
            }}
            onBlur={(e) => {
              const v = Math.max(1, Math.min(50, Number(e.target.value) || 10));
              if (v !== state.topk) update({ topk: v });
            }}
            title="rows kept per column (the union is shown); Enter applies"
          />
        </label>
        <label className="check small">
          <input type="checkbox" checked={state.abs} onChange={(e) => update({ abs: e.target.checked })} /> rank by |value|
        </label>
      </div>
      <p className="hint">
        <b>est. total effect</b>: activation × gradient. <b>measured ablation</b>: the model re-run without the node — ablating it moves the value by that much. Click a header to sort: first <b>|▼|</b> by magnitude (the biggest effects of either sign first), again for <b>▼</b> / <b>▲</b> by signed value; <kbd>/</kbd> edits the prompt.
      </p>
      {shown.length === 0 ? (
        <p className="empty">No {state.gran} rows{state.kinds.length ? " of the chosen kinds" : ""}.</p>
      ) : (
        <SortTable
          rows={shown}
          cols={cols}
          rowKey={(r) => r.node}
          sort={state.sort}
          dir={state.dir}
          abs={state.abs}
          onSort={(key, dir, abs) => update({ sort: key as Column, dir, abs })}
          testid="node-table"
          highlight={(r) => ablated.includes(r.node) || steered.includes(r.node)}
          actions={(r) => (
            <NodeActions
              node={r.node}
              ablated={ablated.includes(r.node)}
              onAblate={onAblate}
              steered={steered.includes(r.node)}
              onSteer={(node) => onSteer(node, r.activation)}
              onTrace={onTrace}
              onDownstream={onDownstream}
              onAttend={onAttend}
            />
          )}
        />
      )}
    </section>
  );
}

// The trace chain: the path of hops traced so far and the edges into (or out of) its last node.
import { useEffect, useRef, useState } from "react";
import type { EdgeRow, TraceResult } from "../../api/types";
import type { ApiError } from "../../api/client";
import { SortTable, type Col } from "../../components/SortTable";
import { ErrorBox, Loading } from "../../components/Status";
import { fmt, showToken } from "../../lib/format";
import type { Dir } from "../../lib/sort";
import { NodeActions, NodeLink } from "./NodeActions";
import { tokenCell } from "./NodeTablePanel";

interface Props {
  path: string[];
  direction: "upstream" | "downstream";
  data: TraceResult | null;
  error: ApiError | null;
  loading: boolean;
  ablated: string[];
  onPath: (path: string[], direction?: "upstream" | "downstream") => void;
  onAblate: (node: string) => void;
}

export function TracePanel({ path, direction, data, error, loading, ablated, onPath, onAblate }: Props) {
  const [sort, setSort] = useState("edge");
  const [dir, setDir] = useState<Dir>("desc");
  const [abs, setAbs] = useState(true);
  const [gran, setGran] = useState<"position" | "component" | "pair">("position");
  const ref = useRef<HTMLElement>(null);
  const key = `${path.join(",")}|${direction}`;
  useEffect(() => {
    // a new trace starts below a long table: bring it into view
    if (path.length) ref.current?.scrollIntoView?.({ behavior: "smooth", block: "start" });
  }, [key]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!path.length) return null;
  const promoted = data?.promoted ?? [];
  const suppressed = data?.suppressed ?? [];
  const rows = (data?.rows ?? []).filter((r) => r.granularity === gran);
  const cols: Col<EdgeRow>[] = [
    { key: "node", label: "node", render: (r) => <NodeLink node={r.node} /> },
    { key: "token", label: "token", render: (r) => <span className="tokcell">{tokenCell(r)}</span> },
    { key: "edge", label: direction === "upstream" ? "edge into path" : "edge from node", value: (r) => r.edge },
    ...(["q", "k", "v"] as const)
      .filter((v) => rows.some((r) => r[`via_${v}`] !== null && r[`via_${v}`] !== undefined))
      .map((v) => ({ key: `via_${v}`, label: `via ${v.toUpperCase()}`, value: (r: EdgeRow) => r[`via_${v}`] ?? null })),
  ];
  return (
    <section ref={ref} className="panel trace" aria-label="trace chain" data-testid="trace-panel">
      <h2>Trace {direction}</h2>
      <ol className="chain" aria-label="trace path">
        {path.map((hop, i) => (
          <li key={`${hop}-${i}`}>
            <button type="button" onClick={() => onPath(path.slice(0, i + 1))} title="trace from here (drop later hops)">
              <code>{hop}</code>
            </button>
          </li>
        ))}
        <li>
          <button type="button" className="link" onClick={() => onPath([])}>
            clear
          </button>
          {path.length === 1 && !path[0].includes(":") && (
            <button type="button" className="link" onClick={() => onPath(path, direction === "upstream" ? "downstream" : "upstream")}>
              trace {direction === "upstream" ? "downstream" : "upstream"}
            </button>
          )}
        </li>
      </ol>
      {loading && <Loading what="tracing" />}
      {error && <ErrorBox error={error} />}
      {data && (
        <>
          <p className="hint">
            {direction === "upstream"
              ? `Edges: how much each earlier node's write moves ${data.node}'s input along the path (sum of all edges and terms: ${fmt(data.edge_total)}).`
              : `Where ${data.node}'s write goes; its direct effect on the question is ${fmt(data.direct_effect)}.`}
          </p>
          {direction === "downstream" && (promoted.length > 0 || suppressed.length > 0) && (
            <p className="effects">
              pushes up: {promoted.slice(0, 8).map((t) => `${showToken(t.token)} (${fmt(t.logit_change)})`).join(", ")}
              <br />
              pushes down: {suppressed.slice(0, 8).map((t) => `${showToken(t.token)} (${fmt(t.logit_change)})`).join(", ")}
            </p>
          )}
          <div role="radiogroup" aria-label="trace granularity" className="tabs">
            {(["component", "position", "pair"] as const).map((g) => (
              <button key={g} type="button" role="radio" aria-checked={gran === g} className={gran === g ? "active" : undefined} onClick={() => setGran(g)}>
                {g}
              </button>
            ))}
          </div>
          <SortTable
            rows={rows}
            cols={cols}
            rowKey={(r) => r.node}
            sort={sort}
            dir={dir}
            abs={abs}
            onSort={(k, d, a) => {
              setSort(k);
              setDir(d);
              setAbs(a);
            }}
            testid="trace-table"
            actions={(r) => (
              <NodeActions node={r.node} ablated={ablated.includes(r.node)} onAblate={onAblate} onTrace={(hop) => onPath(direction === "upstream" ? [...path, hop] : [hop], "upstream")} />
            )}
          />
        </>
      )}
    </section>
  );
}

// Two prompts side by side: every column on the left, on the right, and right minus left.
import type { CompareRow, Comparison } from "../../api/types";
import { SortTable, type Col } from "../../components/SortTable";
import type { Column, DebuggerState, Side } from "../../lib/debuggerState";
import { fmt, isNum, showToken } from "../../lib/format";
import { NodeLink } from "./NodeActions";

interface Props {
  data: Comparison;
  state: DebuggerState;
  update: (patch: Partial<DebuggerState>) => void;
}

export function ComparePanel({ data, state, update }: Props) {
  const side: Side = state.side;
  const rows = data.rows.filter((r) => r.granularity === state.gran && (state.kinds.length === 0 || state.kinds.includes(r.kind)));
  const cell = (key: Column) => (r: CompareRow) => {
    const c = r[key];
    return c ? (c[side] ?? null) : null;
  };
  const cols: Col<CompareRow>[] = [
    { key: "node", label: "node", render: (r) => <NodeLink node={r.node} /> },
    {
      key: "token",
      label: "tokens (left / right)",
      render: (r) => (r.position === null || r.position === undefined ? null : `${r.position}: ${showToken(r.left_token)} / ${showToken(r.right_token)}`),
    },
    { key: "activation", label: "activation", value: cell("activation") },
    { key: "write_norm", label: "write norm", value: cell("write_norm") },
    { key: "direct_effect", label: "direct effect", value: cell("direct_effect") },
    { key: "total_effect", label: "est. total effect", value: cell("total_effect") },
    { key: "ablation_effect", label: "measured ablation", value: cell("ablation_effect") },
  ];
  return (
    <section className="panel" aria-label="comparison" data-testid="compare-panel">
      <h2>Comparison</h2>
      <p className="value">
        {data.description}: left {fmt(data.left.value, 4)}, right {fmt(data.right.value, 4)}, right − left{" "}
        <strong data-testid="value-diff">{fmt(isNum(data.left.value) && isNum(data.right.value) ? data.value_diff : null, 4)}</strong>
      </p>
      <div role="radiogroup" aria-label="side" className="tabs">
        {(["left", "right", "diff"] as const).map((s) => (
          <button key={s} type="button" role="radio" aria-checked={side === s} className={side === s ? "active" : undefined} onClick={() => update({ side: s })}>
            {s === "diff" ? "right − left" : s}
          </button>
        ))}
      </div>
      <SortTable rows={rows} cols={cols} rowKey={(r) => r.node} sort={state.sort} dir={state.dir} abs={state.abs} onSort={(k, d, a) => update({ sort: k as Column, dir: d, abs: a })} testid="compare-table" />
    </section>
  );
}

// Why a head attends from the query to the key: the score split into what reaches the query side
// and the key side from every upstream node, and every head's attention from the query.
import { useState } from "react";
import type { AttentionResult, SideRow } from "../../api/types";
import { Heatmap } from "../../components/Heatmap";
import { SortTable, type Col } from "../../components/SortTable";
import { TokenView } from "../../components/TokenView";
import { sequential } from "../../lib/color";
import { fmt, pct, showToken } from "../../lib/format";
import type { Dir } from "../../lib/sort";
import { NodeActions, NodeLink } from "./NodeActions";
import { tokenCell } from "./NodeTablePanel";

interface Props {
  data: AttentionResult;
  ablated: string[];
  onAblate: (node: string) => void;
  onTrace: (hop: string) => void;
}

export function AttentionPanel({ data, ablated, onAblate, onTrace }: Props) {
  const [sort, setSort] = useState("key_side");
  const [dir, setDir] = useState<Dir>("desc");
  const [abs, setAbs] = useState(true);
  const [gran, setGran] = useState<"component" | "position" | "pair">("position");
  const rows = data.rows.filter((r) => r.granularity === gran);
  const cols: Col<SideRow>[] = [
    { key: "node", label: "node", render: (r) => <NodeLink node={r.node} /> },
    { key: "token", label: "token", render: (r) => <span className="tokcell">{tokenCell(r)}</span> },
    { key: "query_side", label: "via query", value: (r) => r.query_side },
    { key: "key_side", label: "via key", value: (r) => r.key_side },
  ];
  const q = data.query_position;
  const top = Math.max(1e-9, ...data.pairs.flatMap((p) => p.attention));
  const keys = data.prompt.tokens.slice(0, q + 1).map((t, i) => `${i}:${showToken(t)}`);
  return (
    <section className="panel" aria-label="attention explanation" data-testid="attention-panel">
      <p className="value" data-testid="value">
        <span className="desc">{data.description}</span>: score <strong>{fmt(data.score, 4)}</strong>, attention probability {pct(data.probability)}
        <span className="hint"> (query side total {fmt(data.query_total)}, key side total {fmt(data.key_total)})</span>
      </p>
      <TokenView tokens={data.prompt.tokens} marked={[data.query_position, data.key_position]} label="prompt" />
      <div role="radiogroup" aria-label="granularity" className="tabs">
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
        testid="attention-table"
        actions={(r) => <NodeActions node={r.node} ablated={ablated.includes(r.node)} onAblate={onAblate} onTrace={onTrace} />}
      />
      <h3>Every head's attention from position {q}</h3>
      <Heatmap
        label="attention of every head from the query position"
        rows={data.pairs.map((p) => p.head)}
        cols={keys}
        color={(i, j) => sequential(data.pairs[i].attention[j], top)}
        title={(i, j) => `${data.pairs[i].head} → ${keys[j]}: ${pct(data.pairs[i].attention[j])} (write-weighted ${fmt(data.pairs[i].weighted[j])})`}
        cellWidth={22}
      />
    </section>
  );
}

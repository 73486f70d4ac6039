// What the weights say about the heads: composition between heads, head scores, the induction
// circuit, attention patterns on a repeated sequence, and OV / QK top-token tables.
import { useState } from "react";
import { get } from "../api/client";
import type { CircuitsView, TokenTableView } from "../api/types";
import { Heatmap } from "../components/Heatmap";
import { SortTable, type Col } from "../components/SortTable";
import { ErrorBox, Loading } from "../components/Status";
import { sequential } from "../lib/color";
import { fmt, pct, showToken } from "../lib/format";
import { Link, navigate, urlOf } from "../lib/router";
import type { Dir } from "../lib/sort";
import { useAsync } from "../lib/useAsync";

interface HeadRow {
  head: string;
  previous_token: number;
  duplicate_token: number;
  induction: number;
  copying: number;
}

export function CircuitsPage({ params }: { params: URLSearchParams }) {
  const rep = useAsync("circuits", (signal) => get("/api/circuits", {}, {}, signal));
  const set = (patch: Record<string, string>) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) p.set(k, v);
    navigate(urlOf("/circuits", p), true);
  };
  return (
    <div className="circuits-page">
      {rep.loading && <Loading what="reading the weights (the first time takes a few seconds)" />}
      {rep.error && <ErrorBox error={rep.error} />}
      {rep.data && <Circuits data={rep.data} params={params} set={set} />}
    </div>
  );
}

function Circuits({ data, params, set }: { data: CircuitsView; params: URLSearchParams; set: (p: Record<string, string>) => void }) {
  const H = data.n_heads;
  const heads = Array.from({ length: data.n_layers * H }, (_, i) => `L${Math.floor(i / H)}.H${i % H}`);
  const modes = data.composition.map((c) => c.mode);
  const mode = modes.includes(params.get("mode") ?? "") ? params.get("mode")! : (modes[1] ?? modes[0]);
  const comp = data.composition.find((c) => c.mode === mode);
  const best = data.pairs[0]?.induction_head ?? data.induction_heads[0]?.head ?? heads[heads.length - 1];
  const head = heads.includes(params.get("head") ?? "") ? params.get("head")! : best;
  const [sort, setSort] = useState("induction");
  const [dir, setDir] = useState<Dir>("desc");
  const rows: HeadRow[] = heads.map((h, i) => {
    const l = Math.floor(i / H);
    const j = i % H;
    return {
      head: h,
      previous_token: data.scores.previous_token[l][j],
      duplicate_token: data.scores.duplicate_token[l][j],
      induction: data.scores.induction[l][j],
      copying: data.scores.copying[l][j],
    };
  });
  const cols: Col<HeadRow>[] = [
    { key: "head", label: "head", render: (r) => <code>{r.head}</code> },
    { key: "previous_token", label: "previous-token", value: (r) => r.previous_token, title: "mean attention to the previous token" },
    { key: "duplicate_token", label: "duplicate-token", value: (r) => r.duplicate_token, title: "attention to the same token earlier" },
    { key: "induction", label: "induction", value: (r) => r.induction, title: "attention to the token after the earlier copy" },
    { key: "copying", label: "copying", value: (r) => r.copying, title: "Σ Re λ / Σ |λ| of the full OV circuit" },
  ];
  const maxComp = comp ? Math.max(1e-9, ...comp.scores.flat().filter((v): v is number => v !== null)) : 1;
  const hi = heads.indexOf(head);
  const pattern = data.patterns[Math.floor(hi / H)][hi % H];
  const ptoks = data.pattern_tokens.map((t, i) => `${i}:${showToken(t)}`);
  return (
    <>
      <section className="panel">
        <h1>Circuits of {data.model}</h1>
        <p>{data.summary}</p>
        <p className="hint">{data.layernorm}</p>
        {data.notes.map((n) => (
          <p key={n} className="hint">
            {n}
          </p>
        ))}
        {data.pairs.length > 0 ? (
          <ul className="pairs" data-testid="induction-pairs">
            {data.pairs.map((p) => (
              <li key={p.induction_head}>
                induction head <button type="button" className="link" onClick={() => set({ head: p.induction_head })}><code>{p.induction_head}</code></button> ({fmt(p.induction_score)}) ← previous-token head{" "}
                <button type="button" className="link" onClick={() => set({ head: p.previous_token_head })}><code>{p.previous_token_head}</code></button> ({fmt(p.previous_token_score)}), K-composition {fmt(p.k_composition)}
              </li>
            ))}
          </ul>
        ) : (
          <p className="empty">No induction head found (scores below the threshold).</p>
        )}
        <p className="hint">
          loss on a repeated random sequence: first half {fmt(data.scores.loss_first_half)} nats, repeated half {fmt(data.scores.loss_repeat_half)} nats
        </p>
      </section>
      {comp ? (
        <section className="panel" aria-label="composition" data-testid="composition">
          <div className="token-head">
            <h2>{mode}-composition: how much each earlier head writes what a later head reads</h2>
            <div role="radiogroup" aria-label="composition mode" className="tabs">
              {modes.map((m) => (
                <button key={m} type="button" role="radio" aria-checked={m === mode} className={m === mode ? "active" : undefined} onClick={() => set({ mode: m })}>
                  {m}
                </button>
              ))}
            </div>
          </div>
          <Heatmap
            label={`${mode}-composition scores`}
            rows={heads}
            cols={heads}
            color={(i, j) => (comp.scores[i][j] === null ? "#eee" : sequential(comp.scores[i][j], maxComp))}
            title={(i, j) => (comp.scores[i][j] === null ? `${heads[i]} → ${heads[j]}: not an earlier layer` : `${heads[i]} → ${heads[j]}: ${fmt(comp.scores[i][j])} (random baseline ${fmt(comp.baseline)})`)}
            onCell={(_, j) => set({ head: heads[j] })}
            cellWidth={30}
          />
          <p className="hint">rows: the earlier (writing) head; columns: the later (reading) head; random baseline {fmt(comp.baseline)}.</p>
        </section>
      ) : (
        <p className="empty">One layer: no composition between layers.</p>
      )}
      <div className="node-grid">
        <section className="panel" aria-label="head scores">
          <h2>Head scores</h2>
          <SortTable
            rows={rows}
            cols={cols}
            rowKey={(r) => r.head}
            sort={sort}
            dir={dir}
            onSort={(k, d) => {
              setSort(k);
              setDir(d);
            }}
            testid="head-scores"
            highlight={(r) => r.head === head}
            actions={(r) => (
              <span className="row-actions">
                <button type="button" onClick={() => set({ head: r.head })}>show</button>
                <Link to={`/node/${r.head}`}>page</Link>
              </span>
            )}
          />
        </section>
        <section className="panel" aria-label="attention pattern" data-testid="pattern">
          <h2>
            <code>{head}</code> on a repeated random sequence
          </h2>
          <Heatmap
            label={`attention pattern of ${head}`}
            rows={ptoks}
            cols={ptoks.map((_, i) => String(i))}
            color={(q, k) => (k > q ? "#f8f8f8" : sequential(pattern[q][k], 1))}
            title={(q, k) => `${ptoks[q]} → ${ptoks[k]}: ${pct(pattern[q][k])}`}
            cellWidth={9}
          />
          <p className="hint">rows: query position; columns: key position. An induction head lights up the diagonal one step after the earlier copy.</p>
        </section>
      </div>
      <TokenTables head={head} />
    </>
  );
}

function TokenTables({ head }: { head: string }) {
  const [kind, setKind] = useState<"ov" | "qk">("ov");
  const t = useAsync(`${kind}:${head}`, (signal) => get("/api/circuits/table", { kind, head, k: 5, n_rows: 8 }, {}, signal));
  return (
    <section className="panel" aria-label="token tables">
      <div className="token-head">
        <h2>
          <code>{head}</code> {kind.toUpperCase()} circuit: strongest rows
        </h2>
        <div role="radiogroup" aria-label="circuit" className="tabs">
          {(["ov", "qk"] as const).map((k) => (
            <button key={k} type="button" role="radio" aria-checked={kind === k} className={kind === k ? "active" : undefined} onClick={() => setKind(k)}>
              {k.toUpperCase()}
            </button>
          ))}
        </div>
      </div>
      {t.loading && <Loading what="reading the circuit" />}
      {t.error && <ErrorBox error={t.error} />}
      {t.data && <TokenTable table={t.data} />}
    </section>
  );
}

function TokenTable({ table }: { table: TokenTableView }) {
  return (
    <>
      <p className="hint">{table.description}</p>
      <table className="token-table">
        <thead>
          <tr>
            <th>{table.kind === "qk" ? "query token" : "source token"}</th>
            <th>highest</th>
            <th>lowest</th>
          </tr>
        </thead>
        <tbody>
          {table.rows.map((r) => (
            <tr key={r.token}>
              <td>
                <code>{showToken(r.text)}</code>
              </td>
              <td>{r.top.map((s) => `${showToken(s.text)} ${fmt(s.score)}`).join(", ")}</td>
              <td>{r.bottom.map((s) => `${showToken(s.text)} ${fmt(s.score)}`).join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

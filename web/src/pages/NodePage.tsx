// One node's page: explanation and score, dataset examples shaded by activation, the activation
// distribution, the output tokens it pushes, its activations on your text, neighbours.
import { useEffect, useState } from "react";
import { useInfo } from "../lib/modelInfo";
import { get, post } from "../api/client";
import type { ExplainerInfo, NodeRecord, RecordEffect } from "../api/types";
import { Examples } from "../components/Examples";
import { ExplanationBox } from "../components/ExplanationBox";
import { Histogram } from "../components/Histogram";
import { ErrorBox, Loading } from "../components/Status";
import { TokenView } from "../components/TokenView";
import { fmt, pct, showToken } from "../lib/format";
import { neighbours, nodeProblem, parseNode } from "../lib/nodes";
import { Link, navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";
import { LAST_DEBUGGER } from "./DebuggerPage";

type Tab = "top" | "random" | "quantiles";

export function NodePage({ id, params }: { id: string; params: URLSearchParams }) {
  const info = useInfo();
  const node = parseNode(id);
  const tab = (["top", "random", "quantiles"].includes(params.get("tab") ?? "") ? params.get("tab") : "top") as Tab;
  const text = params.get("text") ?? "";
  const explainer: ExplainerInfo["name"] = params.get("explainer") === "llm" ? "llm" : "offline";
  const set = (patch: Record<string, string>) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) if (v) p.set(k, v); else p.delete(k);
    navigate(urlOf(`/node/${id}`, p), true);
  };
  // a node the model does not have gets its reason, and no record, neighbours or text form
  const problem = nodeProblem(id, info);
  const rec = useAsync(info.records.available && node && !problem ? `rec:${id}` : null, (signal) => get("/api/nodes/{node_id}", {}, { node_id: id }, signal));
  const nb = neighbours(id, info);
  const layerOf = (n: string) => parseNode(n)?.layer;
  const back = sessionStorage.getItem(LAST_DEBUGGER) ?? "/";
  const kindName = node?.kind === "head" ? "attention head" : node?.kind === "neuron" ? "MLP neuron" : node?.kind === "latent" ? "SAE latent" : "node";

  return (
    <div className="node-page">
      <nav className="node-nav" aria-label="node navigation">
        <Link to={back}>← debugger</Link>
        <span className="sep" />
        {nb.prevLayer && (
          <Link to={`/node/${nb.prevLayer}`} data-nav="earlier-layer" title={`the same index in layer ${layerOf(nb.prevLayer)}, the earlier layer (closer to the input)`}>
            ← {nb.prevLayer} (layer {layerOf(nb.prevLayer)})
          </Link>
        )}
        {nb.prev && <Link to={`/node/${nb.prev}`} rel="prev" title="the previous node">‹ {nb.prev}</Link>}
        {nb.next && <Link to={`/node/${nb.next}`} rel="next" title="the next node">{nb.next} ›</Link>}
        {nb.nextLayer && (
          <Link to={`/node/${nb.nextLayer}`} data-nav="later-layer" title={`the same index in layer ${layerOf(nb.nextLayer)}, the later layer (closer to the output)`}>
            {nb.nextLayer} (layer {layerOf(nb.nextLayer)}) →
          </Link>
        )}
      </nav>
      <h1>
        <code>{id}</code> <small>{kindName}</small>
      </h1>
      {problem && <ErrorBox error={new Error(problem)} />}
      {!problem && !info.records.available && (
        <p className="empty" data-testid="no-records">
          {info.records.note || "No records are loaded, so there are no dataset examples."} Your own text still works below.
        </p>
      )}
      {rec.loading && <Loading what="reading the records" />}
      {rec.error && <ErrorBox error={rec.error} />}
      {rec.data && (
        <RecordView
          rec={rec.data}
          id={id}
          tab={tab}
          onTab={(t) => set({ tab: t === "top" ? "" : t })}
          explainers={info.explainers ?? []}
          explainer={explainer}
          onExplainer={(e) => set({ explainer: e === "offline" ? "" : e })}
        />
      )}
      {node && !problem && <MyText id={id} text={text} onText={(t) => set({ text: t })} max={rec.data?.stats.max ?? null} head={node.kind === "head"} />}
    </div>
  );
}

interface RecordProps {
  rec: NodeRecord;
  id: string;
  tab: Tab;
  onTab: (t: Tab) => void;
  explainers: ExplainerInfo[];
  explainer: ExplainerInfo["name"];
  onExplainer: (e: ExplainerInfo["name"]) => void;
}

function RecordView({ rec, id, tab, onTab, explainers, explainer, onExplainer }: RecordProps) {
  const s = rec.stats;
  return (
    <>
      <ExplanationBox id={id} stored={rec.explanations} explainers={explainers} choice={explainer} onChoice={onExplainer} />
      <div className="node-grid">
        <section className="panel" aria-label="activation distribution">
          <h2>Activations</h2>
          <dl className="stats">
            <dt>max</dt><dd>{fmt(s.max)}</dd>
            <dt>mean</dt><dd>{fmt(s.mean)}</dd>
            <dt>std</dt><dd>{fmt(s.std)}</dd>
            <dt>min</dt><dd>{fmt(s.min)}</dd>
            <dt title="fraction of tokens with activation > 0">density</dt><dd>{pct(s.density)}</dd>
            <dt>tokens</dt><dd>{s.count.toLocaleString()}</dd>
          </dl>
          <Histogram lo={rec.histogram.lo} hi={rec.histogram.hi} counts={rec.histogram.counts} />
        </section>
        <section className="panel" aria-label="output token effects">
          <h2>Output tokens</h2>
          <div className="effects-grid">
            <Effects title="boosts" rows={rec.boosts} />
            <Effects title="suppresses" rows={rec.suppresses} />
          </div>
        </section>
      </div>
      <section className="panel" aria-label="examples">
        <div role="tablist" aria-label="example sets" className="tabs">
          {(["top", "random", "quantiles"] as const).map((t) => (
            <button key={t} type="button" role="tab" aria-selected={tab === t} className={tab === t ? "active" : undefined} onClick={() => onTab(t)}>
              {t === "top" ? `top (${rec.top.length})` : t === "random" ? `random (${rec.random.length})` : "by quantile"}
            </button>
          ))}
        </div>
        {tab === "top" && <Examples examples={rec.top} max={s.max} empty="no top examples" />}
        {tab === "random" && <Examples examples={rec.random} max={s.max} empty="no random examples" />}
        {tab === "quantiles" &&
          rec.quantiles.map((q, i) => (
            <div key={i}>
              <h3>
                quantile {pct(q.level_lo)}–{q.level_hi === null || q.level_hi === undefined ? "max" : pct(q.level_hi)}: activations {fmt(q.lo)} … {q.hi === null || q.hi === undefined ? fmt(s.max) : fmt(q.hi)}
              </h3>
              <Examples examples={q.examples ?? []} max={s.max} empty="no examples in this bin" />
            </div>
          ))}
      </section>
    </>
  );
}

function Effects({ title, rows }: { title: string; rows: RecordEffect[] }) {
  return (
    <table className="effects">
      <caption>{title}</caption>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            <td>
              <code>{showToken(r.token)}</code>
            </td>
            <td className="num">{fmt(r.value)}</td>
            {r.source !== null && r.source !== undefined && <td className="hint" title="when attending to this source token">from <code>{showToken(r.source)}</code></td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function MyText({ id, text, onText, max, head }: { id: string; text: string; onText: (t: string) => void; max: number | null; head: boolean }) {
  const [draft, setDraft] = useState(text);
  const [sel, setSel] = useState<number | null>(null);
  useEffect(() => setDraft(text), [text]);
  const acts = useAsync(text ? `act:${id}:${text}` : null, (signal) => post("/api/nodes/{node_id}/activations", { text }, { node_id: id }, signal));
  const d = acts.data;
  const scale = d ? (d.max_over_records ?? max ?? Math.max(...d.acts.map(Math.abs), 1e-9)) : 1;
  const selected = d && sel !== null && sel < d.tokens.length ? sel : d ? d.tokens.length - 1 : null;
  return (
    <section className="panel" aria-label="activations on my text" data-testid="my-text">
      <h2>Activations on your text</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onText(draft);
        }}
      >
        <textarea name="mytext" rows={2} value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Type some text and press Show" spellCheck={false} />
        <button type="submit">Show</button>
      </form>
      {acts.loading && <Loading what="running the model" />}
      {acts.error && <ErrorBox error={acts.error} />}
      {d && (
        <>
          <TokenView tokens={d.tokens} values={d.acts} scale="sequential" max={scale} selected={head ? selected : null} onSelect={head ? setSel : undefined} label="activations on your text" />
          <p className="hint">
            max here {fmt(Math.max(...d.acts))}
            {d.max_over_records !== null && d.max_over_records !== undefined && ` · max over the records ${fmt(d.max_over_records)}`}
            {head && " · a head's activation is the norm of what it writes; click a token to see where it attends"}
          </p>
          {head && d.pattern && selected !== null && (
            <>
              <h3>
                attention from {selected}: <code>{showToken(d.tokens[selected])}</code>
              </h3>
              <TokenView tokens={d.tokens.slice(0, selected + 1)} values={d.pattern[selected].slice(0, selected + 1)} scale="sequential" max={1} label="attention pattern" />
            </>
          )}
        </>
      )}
    </section>
  );
}

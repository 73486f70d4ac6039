// The logit lens (or the server's tuned lens): what every layer's residual stream predicts at
// every position, and where each watched token rises to the top.
import { useEffect, useState, type FormEvent } from "react";
import { useInfo } from "../lib/modelInfo";
import { post } from "../api/client";
import type { LensView } from "../api/types";
import { Heatmap } from "../components/Heatmap";
import { ErrorBox, Loading } from "../components/Status";
import { rankColor, sequential } from "../lib/color";
import { fmt, pct, showToken } from "../lib/format";
import { lensName, lensRequest, parseLens, patchParams, type Metric } from "../lib/lensState";
import { navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";

export function LensPage({ params }: { params: URLSearchParams }) {
  const info = useInfo();
  const s = parseLens(params, info);
  const { prompt, watch, generate, sublayers, metric, tuned, precision } = s;

  const [draft, setDraft] = useState({ prompt, watch: watch.join("|"), generate: String(generate), sublayers });
  useEffect(() => setDraft({ prompt, watch: watch.join("|"), generate: String(generate), sublayers }), [prompt, watch.join("|"), generate, sublayers]); // eslint-disable-line react-hooks/exhaustive-deps

  const set = (patch: Record<string, string | string[]>) => navigate(urlOf("/lens", patchParams(params, patch)));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    set({
      prompt: draft.prompt,
      watch: draft.watch === "" ? [] : draft.watch.split("|"),
      generate: draft.generate === "0" ? "" : draft.generate,
      sublayers: draft.sublayers && !tuned ? "1" : "",
    });
  };
  const body = lensRequest(s);
  const key = prompt ? JSON.stringify(body) : null;
  const lens = useAsync(key, (signal) => post("/api/lens", body, {}, signal));

  return (
    <div className="lens-page">
      <form className="question" onSubmit={submit} aria-label="lens settings">
        <label className="prompt">
          <span>Prompt</span>
          <textarea name="prompt" rows={2} value={draft.prompt} onChange={(e) => setDraft({ ...draft, prompt: e.target.value })} spellCheck={false} />
        </label>
        <div className="row">
          <label>
            <span>Watch tokens (a|b)</span>
            <input name="watch" value={draft.watch} onChange={(e) => setDraft({ ...draft, watch: e.target.value })} placeholder=" 10| n" spellCheck={false} />
          </label>
          <label>
            <span>Generate</span>
            <input name="generate" type="number" min={0} max={info.limits.max_generate} value={draft.generate} onChange={(e) => setDraft({ ...draft, generate: e.target.value })} />
          </label>
          <label className="check" title={tuned ? "the tuned lens has translators after whole layers only" : undefined}>
            <input type="checkbox" checked={draft.sublayers && !tuned} disabled={tuned} onChange={(e) => setDraft({ ...draft, sublayers: e.target.checked })} /> after each attention too
          </label>
          {info.tuned_lens && (
            <label className="check" title="Belrose et al.'s tuned lens: an affine translator per layer before the final norm and unembedding">
              <input type="checkbox" name="tuned" data-testid="lens-tuned" checked={tuned} onChange={(e) => set({ tuned: e.target.checked ? "1" : "" })} /> tuned lens ({info.tuned_lens})
            </label>
          )}
          <label>
            <span>Precision</span>
            <select name="precision" value={precision} onChange={(e) => set({ precision: e.target.value === "bf16" ? "bf16" : "" })}>
              <option value="fp32">fp32 (exact)</option>
              <option value="bf16">bf16 (approximate)</option>
            </select>
          </label>
          <button type="submit" className="primary">
            Run the lens
          </button>
        </div>
      </form>
      {lens.loading && <Loading what="projecting every layer" />}
      {lens.error && <ErrorBox error={lens.error} />}
      {lens.data && <LensResult data={lens.data} metric={metric} onMetric={(m) => set({ metric: m === "rank" ? "" : m })} vocab={info.config.d_vocab as number} />}
    </div>
  );
}

function LensResult({ data, metric, onMetric, vocab }: { data: LensView; metric: Metric; onMetric: (m: Metric) => void; vocab: number }) {
  const P = data.tokens.length;
  const cols = data.tokens.map((t, i) => `${i}:${showToken(t)}${i >= data.n_prompt ? " (gen)" : ""}`);
  const maxEntropy = Math.max(1e-9, ...data.entropy.flat());
  const maxKl = Math.max(1e-9, ...data.kl.flat());
  const color = (b: number, p: number): string => {
    if (metric === "rank") return p < P - 1 ? rankColor(data.next_rank[b][p], vocab) : "#f3f4f6";
    if (metric === "prob") return sequential(data.top_probs[b][p][0], 1);
    if (metric === "entropy") return sequential(data.entropy[b][p], maxEntropy);
    return sequential(data.kl[b][p], maxKl);
  };
  const title = (b: number, p: number): string => {
    const top = data.top_tokens[b][p].map((t, j) => `${JSON.stringify(t)} ${pct(data.top_probs[b][p][j])}`).join(", ");
    const next = p < P - 1 ? `next token ${JSON.stringify(data.tokens[p + 1])}: rank ${data.next_rank[b][p]}, p ${pct(data.next_prob[b][p])}; ` : "";
    return `${data.boundaries[b]} @ ${p}: ${next}entropy ${fmt(data.entropy[b][p])} nats, KL to final ${fmt(data.kl[b][p])}; top: ${top}`;
  };
  const name = lensName(data);
  return (
    <>
      {(data.generated ?? []).length > 0 && (
        <p className="value">
          generated: <code>{(data.generated ?? []).map(showToken).join("")}</code>
        </p>
      )}
      {(data.notes ?? []).map((n) => (
        <p key={n} className="hint">
          {n}
        </p>
      ))}
      <section className="panel" aria-label="lens heatmap" data-testid="lens-heatmap">
        <div className="token-head">
          <h2 data-testid="lens-title">Top token at every layer and position: {name}</h2>
          <div role="radiogroup" aria-label="colour" className="tabs">
            {(["rank", "prob", "entropy", "kl"] as const).map((m) => (
              <button key={m} type="button" role="radio" aria-checked={metric === m} className={metric === m ? "active" : undefined} onClick={() => onMetric(m)}>
                {m === "rank" ? "rank of the next token" : m === "prob" ? "top probability" : m === "entropy" ? "entropy" : "KL to final"}
              </button>
            ))}
          </div>
        </div>
        <Heatmap
          label={name}
          rows={data.boundaries}
          cols={cols}
          color={color}
          title={title}
          text={(b, p) => <span className="cell-token">{showToken(data.top_tokens[b][p][0])}</span>}
          cellWidth={48}
        />
        <p className="hint">
          Rows: the residual stream after the embeddings and after each layer{data.lens === "tuned" ? ", each through its tuned translator," : ""} then the final norm and unembedding; the last row is the model's output. Cell text: that layer's top token.
        </p>
      </section>
      {data.watched.map((w, j) => (
        <section key={`${w.text}-${j}`} className="panel" aria-label={`watched ${w.text}`} data-testid="lens-watch">
          <h2>
            Rank of <code>{showToken(w.token)}</code> {w.text !== w.token && <small>(for {JSON.stringify(w.text)})</small>}
          </h2>
          <Heatmap
            label={`rank of ${w.token}, ${name}`}
            rows={data.boundaries}
            cols={cols}
            color={(b, p) => rankColor(data.watch_rank[b][p][j], vocab)}
            title={(b, p) => `${data.boundaries[b]} @ ${p}: rank ${data.watch_rank[b][p][j]}, p ${pct(data.watch_prob[b][p][j])}`}
            text={(b, p) => data.watch_rank[b][p][j]}
            cellWidth={48}
          />
        </section>
      ))}
    </>
  );
}

// A tiny GPT is a finite Markov chain over its contexts: the served model's chain when it is
// small enough, and Karpathy's baby GPT trained on a bit string, before and after training.
import { useEffect, useState, type FormEvent } from "react";
import { useInfo } from "../lib/modelInfo";
import { get, post } from "../api/client";
import type { ChainView, MarkovView } from "../api/types";
import { ErrorBox, Loading } from "../components/Status";
import { fmt, pct } from "../lib/format";
import { navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";

export function MarkovPage({ params }: { params: URLSearchParams }) {
  const info = useInfo();
  const seq = params.get("seq") ?? "111101111011110";
  const steps = Math.max(0, Math.min(info.limits.max_markov_steps, Number(params.get("steps") ?? "50") || 0));
  const seed = Number(params.get("seed") ?? "1337") || 0;
  const [draft, setDraft] = useState({ seq, steps: String(steps), seed: String(seed) });
  useEffect(() => setDraft({ seq, steps: String(steps), seed: String(seed) }), [seq, steps, seed]);
  const served = useAsync(info.markov ? "markov" : null, (signal) => get("/api/markov", {}, {}, signal));
  const baby = useAsync(JSON.stringify([seq, steps, seed]), (signal) => post("/api/markov/baby", { sequence: seq, steps, seed }, {}, signal));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    navigate(urlOf("/markov", { seq: draft.seq, steps: draft.steps, seed: draft.seed }));
  };
  return (
    <div className="markov-page">
      <section className="panel">
        <h1>Markov view</h1>
        {info.markov ? (
          <>
            {served.loading && <Loading what={`enumerating ${info.name}'s contexts`} />}
            {served.error && <ErrorBox error={served.error} />}
            {served.data && <Chains data={served.data} />}
          </>
        ) : (
          <p className="hint" data-testid="markov-too-big">
            {info.name} has {String(info.config.d_vocab)} tokens and a context of {String(info.config.n_ctx)}: far too many states to draw. Below: Karpathy's baby GPT (2 tokens, context 3), which is exactly a Markov chain over 8 states.
          </p>
        )}
      </section>
      <section className="panel">
        <h2>Baby GPT</h2>
        <form className="row" onSubmit={submit} aria-label="baby GPT settings">
          <label>
            <span>Training sequence</span>
            <input name="seq" value={draft.seq} onChange={(e) => setDraft({ ...draft, seq: e.target.value })} spellCheck={false} />
          </label>
          <label>
            <span>Steps</span>
            <input name="steps" type="number" min={0} max={info.limits.max_markov_steps} value={draft.steps} onChange={(e) => setDraft({ ...draft, steps: e.target.value })} />
          </label>
          <label>
            <span>Seed</span>
            <input name="seed" type="number" value={draft.seed} onChange={(e) => setDraft({ ...draft, seed: e.target.value })} />
          </label>
          <button type="submit" className="primary">
            Train and draw
          </button>
        </form>
        {baby.loading && <Loading what="training the baby GPT" />}
        {baby.error && <ErrorBox error={baby.error} />}
        {baby.data && <Chains data={baby.data} />}
      </section>
    </div>
  );
}

function Chains({ data }: { data: MarkovView }) {
  return (
    <>
      {data.loss_first !== null && data.loss_first !== undefined && (
        <p className="value">
          {data.n_params?.toLocaleString()} parameters; loss {fmt(data.loss_first)} → {fmt(data.loss_final)} nats after {data.steps} steps
        </p>
      )}
      <div className="chains">
        {data.chains.map((c) => (
          <Chain key={c.title} chain={c} />
        ))}
      </div>
    </>
  );
}

function Chain({ chain }: { chain: ChainView }) {
  const recurrent = chain.classes.filter((c) => c.kind !== "transient");
  return (
    <figure className="chain-fig" data-testid="markov-chain">
      <figcaption>
        <strong>{chain.title}</strong>: {chain.states.length} states, vocabulary {chain.V}, context {chain.C}
      </figcaption>
      {chain.svg ? (
        <img src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(chain.svg)}`} alt={`transition graph: ${chain.title}`} className="graph" />
      ) : (
        <p className="hint">{chain.svg_note || "no drawing"}</p>
      )}
      <ul>
        {recurrent.map((c, i) => (
          <li key={i}>
            {c.kind === "absorbing" ? "absorbing state" : `recurrent class (period ${c.period})`}: {c.states.join(" ")}
            {c.stationary && ` — stationary ${c.states.map((s, j) => `${s} ${pct(c.stationary![j])}`).join(", ")}`}
          </li>
        ))}
      </ul>
      <details>
        <summary>next-token probabilities</summary>
        <table>
          <thead>
            <tr>
              <th>state</th>
              {Array.from({ length: chain.V }, (_, t) => (
                <th key={t}>p({t})</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {chain.states.map((s, i) => (
              <tr key={s}>
                <td>
                  <code>{s}</code>
                </td>
                {chain.next_token_probs[i].map((p, t) => (
                  <td key={t} className="num">
                    {pct(p)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

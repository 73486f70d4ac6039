// A node's explanations with their simulation scores and shuffled controls, and a choice of
// explainer (token statistics, or the server's LLM when it has one) to explain and score again.
import { useEffect, useState } from "react";
import { post } from "../api/client";
import type { Explanation, ExplainerInfo } from "../api/types";
import { fmt } from "../lib/format";
import { ErrorBox } from "./Status";

type Name = ExplainerInfo["name"];

/** The explainer as a reader names it: "token statistics" or "LLM <model>". */
export function explainerName(e: { name: Name | string; model?: string | null }): string {
  if (e.name === "llm") return e.model ? `LLM ${e.model}` : "LLM";
  if (e.name === "offline") return "token statistics";
  return e.name;
}

/** Stored explanations with the ones made in this view replacing their explainer's, newest first. */
export function mergeExplanations(stored: Explanation[], made: Explanation[]): Explanation[] {
  const mine = new Set(made.map((e) => e.explainer));
  return [...made, ...stored.filter((e) => !mine.has(e.explainer))];
}

const OFFLINE: ExplainerInfo = { name: "offline", label: "token statistics (no language model)", model: null };

interface Props {
  id: string;
  stored: Explanation[];
  explainers: ExplainerInfo[];
  choice: Name;
  onChoice: (name: Name) => void;
}

export function ExplanationBox({ id, stored, explainers, choice, onChoice }: Props) {
  const [made, setMade] = useState<Explanation[]>([]);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<Error | null>(null);
  useEffect(() => {
    setMade([]);
    setErr(null);
  }, [id]);
  const available = explainers.length ? explainers : [OFFLINE];
  const chosen = available.find((e) => e.name === choice) ?? available[0];
  const all = mergeExplanations(stored, made);
  const current = all.find((e) => e.explainer === chosen.name);
  const run = async () => {
    setBusy(true);
    setErr(null);
    try {
      const e = await post("/api/nodes/{node_id}/explain", { explainer: chosen.name, refresh: current !== undefined }, { node_id: id });
      setMade((m) => [e, ...m.filter((x) => x.explainer !== e.explainer)]);
    } catch (e) {
      setErr(e as Error);
    } finally {
      setBusy(false);
    }
  };
  const label = current === undefined ? "explain and score" : current.status === "ok" ? "explain and score again" : "try again";
  return (
    <section className="panel explanation-box" aria-label="explanation" data-testid="explanation">
      <h2>Explanation</h2>
      {all.length === 0 && <p className="empty">No explanation yet.</p>}
      {all.map((e) => (
        <div key={e.explainer} className={`explanation-item${e.status === "ok" ? "" : " failed"}`} data-explainer={e.explainer} data-status={e.status}>
          <p>{e.status === "ok" ? e.text : <em>failed: {e.error}</em>}</p>
          <p className="hint">
            {explainerName({ name: e.explainer, model: e.model })} · score <strong data-testid="score">{fmt(e.score)}</strong> vs shuffled control{" "}
            <span data-testid="control">{fmt(e.control)}</span> on {e.n_tokens} held-out tokens
          </p>
        </div>
      ))}
      <div className="explain-controls">
        {available.length > 1 && (
          <fieldset className="explainer-choice">
            <legend>explainer</legend>
            {available.map((x) => (
              <label key={x.name} className="check" title={x.label}>
                <input type="radio" name="explainer" value={x.name} checked={x.name === chosen.name} onChange={() => onChoice(x.name)} />
                {explainerName(x)}
              </label>
            ))}
          </fieldset>
        )}
        <button type="button" onClick={run} disabled={busy} data-action="explain">
          {busy ? "explaining…" : label}
        </button>
        <span className="hint">{chosen.label}</span>
      </div>
      {err && <ErrorBox error={err} />}
    </section>
  );
}

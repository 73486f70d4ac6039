// Interventions from an attribution graph: ablate or steer pinned features (or a supernode, all
// its members at once) in the real model and compare its top next tokens before and after.
import { useState } from "react";
import type { ApiError } from "../../api/client";
import type { InterveneResult } from "../../api/graphTypes";
import { ErrorBox, Loading } from "../../components/Status";
import { fmt, pct, showToken } from "../../lib/format";
import { SUPER_PREFIX, type VGraph } from "../../lib/graphLayout";
import { removeEdit, setEdit, type GraphEdit, type ViewState } from "../../lib/graphState";

interface Props {
  graph: VGraph;
  view: ViewState;
  edits: GraphEdit[];
  onEdits: (edits: GraphEdit[]) => void;
  result: InterveneResult | null;
  error: ApiError | null;
  loading: boolean;
}

interface Candidate {
  target: string;
  label: string;
  /** the suggested steering value: twice the (mean) activation on this prompt, or 1 */
  suggested: number;
}

const EDITABLE = new Set(["feature"]); // transcoder features; error nodes are no feature to set

/** What the panel offers: pinned features not in a group, and every group holding one. */
export function candidates(graph: VGraph, view: ViewState): Candidate[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const grouped = new Set(view.supernodes.flatMap((s) => s.members));
  const twice = (acts: (number | null)[]) => {
    const xs = acts.filter((a): a is number => a !== null);
    return xs.length ? Number((2 * (xs.reduce((a, b) => a + b, 0) / xs.length)).toPrecision(3)) : 1;
  };
  const singles = view.pinned
    .filter((p) => !grouped.has(p) && EDITABLE.has(byId.get(p)?.kind ?? ""))
    .map((p) => ({ target: p, label: `${byId.get(p)!.label} @${byId.get(p)!.col}`, suggested: twice([byId.get(p)!.activation]) }));
  const groups = view.supernodes
    .filter((s) => s.members.some((m) => EDITABLE.has(byId.get(m)?.kind ?? "")))
    .map((s) => ({ target: SUPER_PREFIX + s.name, label: `▣ ${s.name}`, suggested: twice(s.members.map((m) => byId.get(m)?.activation ?? null)) }));
  return [...singles, ...groups];
}

export function GraphInterventions({ graph, view, edits, onEdits, result, error, loading }: Props) {
  const cands = candidates(graph, view);
  const [values, setValues] = useState<Record<string, string>>({});
  const valueOf = (c: Candidate) => values[c.target] ?? String(c.suggested);
  const label = (target: string) => cands.find((c) => c.target === target)?.label ?? (target.startsWith(SUPER_PREFIX) ? `▣ ${target.slice(SUPER_PREFIX.length)}` : target);
  return (
    <section className="panel" data-testid="graph-interventions">
      <h2>Interventions in the real model</h2>
      {cands.length === 0 ? (
        <p className="hint">Pin features (shift+click, or “click pins”) or group them; then ablate or steer them here.</p>
      ) : (
        <ul className="edit-list" aria-label="pinned features">
          {cands.map((c) => {
            const v = Number(valueOf(c));
            const ok = valueOf(c).trim() !== "" && Number.isFinite(v);
            return (
              <li key={c.target} data-candidate={c.target}>
                <code>{c.label}</code>
                <button type="button" data-action="ablate" onClick={() => onEdits(setEdit(edits, { target: c.target, op: "ablate", value: null }))}>
                  ablate
                </button>
                <button type="button" data-action="steer" disabled={!ok} onClick={() => onEdits(setEdit(edits, { target: c.target, op: "steer", value: v }))}>
                  steer to
                </button>
                <input
                  type="number"
                  step="any"
                  name="steer-value"
                  aria-label={`steering value for ${c.label}`}
                  aria-invalid={!ok}
                  value={valueOf(c)}
                  title="the feature's activation on this prompt is set to this value (each member of a group)"
                  onChange={(e) => setValues({ ...values, [c.target]: e.target.value })}
                />
              </li>
            );
          })}
        </ul>
      )}
      {edits.length > 0 && (
        <>
          <h3>Applied</h3>
          <ul className="edit-list" data-testid="graph-edits">
            {edits.map((e) => (
              <li key={e.target} data-edit={e.target} data-op={e.op}>
                {e.op === "ablate" ? "ablate" : `steer to ${fmt(e.value)}`} <code>{label(e.target)}</code>
                <button type="button" className="link" data-action="remove" onClick={() => onEdits(removeEdit(edits, e.target))}>
                  remove
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      {loading && <Loading what="running the model with the edits" />}
      {error && <ErrorBox error={error} />}
      {result && edits.length > 0 && <BeforeAfter result={result} />}
    </section>
  );
}

/** The union of the two top-token lists, by the probability after the edits. */
export function beforeAfterRows(r: InterveneResult): { token: string; before: number | null; after: number | null }[] {
  const before = new Map(r.before.map((t) => [t.token, t.prob]));
  const after = new Map(r.after.map((t) => [t.token, t.prob]));
  const tokens = [...new Set([...r.after.map((t) => t.token), ...r.before.map((t) => t.token)])];
  const rows = tokens.map((token) => ({ token, before: before.get(token) ?? null, after: after.get(token) ?? null }));
  return rows.sort((a, b) => (b.after ?? -1) - (a.after ?? -1) || (b.before ?? -1) - (a.before ?? -1));
}

function BeforeAfter({ result }: { result: InterveneResult }) {
  return (
    <table className="probs" data-testid="before-after">
      <thead>
        <tr>
          <th>token</th>
          <th>before</th>
          <th>after</th>
        </tr>
      </thead>
      <tbody>
        {beforeAfterRows(result).map((r) => (
          <tr key={r.token} data-token={r.token}>
            <td className="tokcell">{showToken(r.token)}</td>
            <td className="num" data-column="before" data-value={r.before ?? ""}>
              {pct(r.before)}
            </td>
            <td className="num" data-column="after" data-value={r.after ?? ""}>
              {pct(r.after)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

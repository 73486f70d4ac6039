// The answer: the question's value (and how interventions moved it), next-token candidates and
// the prompt coloured by each token's effect.
import type { Candidate, TokenRow, WhyResult } from "../../api/types";
import { TokenView } from "../../components/TokenView";
import type { DebuggerState, TokenColumn } from "../../lib/debuggerState";
import { change, fmt, isNum, pct, showToken } from "../../lib/format";

interface Props {
  result: WhyResult;
  baseline: number | null;
  state: DebuggerState;
  update: (patch: Partial<DebuggerState>) => void;
}

const TOKEN_COLUMNS: { c: TokenColumn; label: string }[] = [
  { c: "embed", label: "token embedding" },
  { c: "pos_embed", label: "position embedding" },
  { c: "heads_query", label: "heads reading here (query)" },
  { c: "heads_key", label: "heads moving from here (key)" },
  { c: "neurons", label: "neurons here" },
  { c: "latents", label: "SAE latents here" },
];

export function ValueLine({ result, baseline }: { result: WhyResult; baseline: number | null }) {
  // The API sends null for a value that is not a finite number (an intervention can blow the
  // output up): show "–" and never subtract it, or a change of -baseline would appear.
  const value: number | null = isNum(result.value) ? result.value : null;
  const delta = change(value, baseline);
  return (
    <p className="value" data-testid="value">
      <span className="desc">{result.description}</span> = <strong data-testid="value-number" data-value={value ?? ""}>{fmt(value, 4)}</strong>
      {value === null && (
        <span className="warn" data-testid="value-nonfinite">
          {" "}
          (not a finite number: the model's output is inf or NaN under these interventions)
        </span>
      )}
      {baseline !== null && (
        <span className="baseline" data-testid="baseline">
          {" "}
          (without interventions {fmt(baseline, 4)}; change <strong data-testid="value-change" data-value={delta ?? ""}>{fmt(delta, 4)}</strong>)
        </span>
      )}
    </p>
  );
}

function Candidates({ cands, state, update }: { cands: Candidate[]; state: DebuggerState; update: Props["update"] }) {
  if (!cands.length) return null;
  const finite = cands.some((c) => isNum(c.prob) && isNum(c.logit));
  return (
    <div className="candidates">
      <h3>Next-token candidates</h3>
      {!finite && (
        <p className="hint" data-testid="candidates-nonfinite">
          probabilities and logits are not finite numbers under these interventions
        </p>
      )}
      <table>
        <tbody>
          {cands.map((c) => (
            <tr key={c.id}>
              <td>
                <code>{showToken(c.token)}</code>
              </td>
              <td className="num">{pct(c.prob)}</td>
              <td className="num" title="logit">
                {fmt(c.logit)}
              </td>
              {state.kind === "logit_diff" && (
                <td>
                  <button type="button" className="link" onClick={() => update({ target: [c.token] })} title="make this the target">
                    target
                  </button>
                  <button type="button" className="link" onClick={() => update({ distractor: [c.token] })} title="make this the distractor">
                    distractor
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function tokenValues(rows: TokenRow[], c: TokenColumn): (number | null)[] {
  return rows.map((r) => (r[c] ?? null) as number | null);
}

export function AnswerPanel({ result, baseline, state, update }: Props) {
  const marked = [result.answer_position, ...(result.key_position !== null && result.key_position !== undefined ? [result.key_position] : [])];
  return (
    <section className="panel answer" aria-label="answer">
      <ValueLine result={result} baseline={baseline} />
      <div className="answer-grid">
        <div>
          <div className="token-head">
            <h3>Prompt, coloured by effect</h3>
            <label className="small">
              colour by{" "}
              <select value={state.color} onChange={(e) => update({ color: e.target.value as TokenColumn })}>
                {TOKEN_COLUMNS.map(({ c, label }) => (
                  <option key={c} value={c}>
                    {label}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <TokenView tokens={result.prompt.tokens} values={tokenValues(result.tokens, state.color)} marked={marked} label="prompt tokens coloured by effect" />
          <p className="hint">blue raises the value, red lowers it (activation × gradient); outlined: the answer position.</p>
        </div>
        <Candidates cands={result.candidates} state={state} update={update} />
      </div>
    </section>
  );
}

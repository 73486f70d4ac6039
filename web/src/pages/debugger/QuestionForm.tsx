// The question: prompt, what to explain (target vs distractor tokens, one token, or a head's
// attention), an optional comparison prompt. Edited locally; "Ask" writes it to the URL.
import { useEffect, useState, type FormEvent, type KeyboardEvent } from "react";
import type { DebuggerState, QuestionKind } from "../../lib/debuggerState";

interface Props {
  state: DebuggerState;
  onAsk: (patch: Partial<DebuggerState>) => void;
  busy: boolean;
  /** the questions offered (the graph page adds "top" and leaves out attention) */
  kinds?: readonly QuestionKind[];
  /** offer a second prompt to compare with */
  compare?: boolean;
}

const KIND_LABELS: Record<QuestionKind, string> = {
  logit_diff: "why target rather than distractor",
  logit: "logit of a token",
  prob: "probability of a token",
  attention: "why a head attends",
  top: "the top logits (95% of probability, at most 10)",
};

const DEBUGGER_KINDS: readonly QuestionKind[] = ["logit_diff", "logit", "prob", "attention"];

const splitTokens = (s: string): string[] => (s === "" ? [] : s.split("|"));
const joinTokens = (t: string[]): string => t.join("|");

export function QuestionForm({ state, onAsk, busy, kinds = DEBUGGER_KINDS, compare = true }: Props) {
  const [prompt, setPrompt] = useState(state.prompt);
  const [kind, setKind] = useState<QuestionKind>(state.kind);
  const [target, setTarget] = useState(joinTokens(state.target));
  const [distractor, setDistractor] = useState(joinTokens(state.distractor));
  const [head, setHead] = useState(state.head);
  const [qpos, setQpos] = useState(state.qpos === null ? "" : String(state.qpos));
  const [kpos, setKpos] = useState(String(state.kpos));
  const [prompt2, setPrompt2] = useState(state.prompt2);
  const [showCompare, setShowCompare] = useState(state.prompt2 !== "");

  useEffect(() => {
    // the URL changed under us (back button, a link, a row action): show what it says
    setPrompt(state.prompt);
    setKind(state.kind);
    setTarget(joinTokens(state.target));
    setDistractor(joinTokens(state.distractor));
    setHead(state.head);
    setQpos(state.qpos === null ? "" : String(state.qpos));
    setKpos(String(state.kpos));
    setPrompt2(state.prompt2);
    if (state.prompt2) setShowCompare(true);
  }, [state.prompt, state.kind, state.target.join("\u0000"), state.distractor.join("\u0000"), state.head, state.qpos, state.kpos, state.prompt2]); // eslint-disable-line react-hooks/exhaustive-deps

  const collect = (): Partial<DebuggerState> => ({
    prompt,
    kind,
    target: splitTokens(target),
    distractor: splitTokens(distractor),
    head: head.trim(),
    qpos: qpos.trim() === "" ? null : Number(qpos),
    kpos: Number(kpos) || 0,
    prompt2: compare && showCompare ? prompt2 : "",
  });

  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    onAsk(collect());
  };
  const swap = () => {
    setTarget(distractor);
    setDistractor(target);
    onAsk({ ...collect(), target: splitTokens(distractor), distractor: splitTokens(target) });
  };
  const ctrlEnter = (e: KeyboardEvent) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit();
  };

  return (
    <form className="question" onSubmit={submit} aria-label="question">
      <label className="prompt">
        <span>Prompt</span>
        <textarea
          name="prompt"
          value={prompt}
          rows={3}
          onChange={(e) => setPrompt(e.target.value)}
          onKeyDown={ctrlEnter}
          placeholder="Text the model reads; the question is about its next token"
          spellCheck={false}
        />
      </label>
      <div className="row">
        <label>
          <span>Question</span>
          <select name="kind" value={kind} onChange={(e) => setKind(e.target.value as QuestionKind)}>
            {kinds.map((k) => (
              <option key={k} value={k}>
                {KIND_LABELS[k]}
              </option>
            ))}
          </select>
        </label>
        {kind === "top" ? null : kind !== "attention" ? (
          <>
            <label>
              <span>Target</span>
              <input name="target" value={target} onChange={(e) => setTarget(e.target.value)} title="one token, exactly (mind leading spaces); several: a|b" spellCheck={false} />
            </label>
            {kind === "logit_diff" && (
              <>
                <button type="button" className="swap" onClick={swap} title="swap target and distractor" aria-label="swap target and distractor">
                  ⇄
                </button>
                <label>
                  <span>Distractor</span>
                  <input name="distractor" value={distractor} onChange={(e) => setDistractor(e.target.value)} title="one token, exactly; several: a|b" spellCheck={false} />
                </label>
              </>
            )}
          </>
        ) : (
          <>
            <label>
              <span>Head</span>
              <input name="head" value={head} onChange={(e) => setHead(e.target.value)} placeholder="L1.H2" size={7} />
            </label>
            <label>
              <span>Query position</span>
              <input name="qpos" value={qpos} onChange={(e) => setQpos(e.target.value)} placeholder="last" size={5} inputMode="numeric" />
            </label>
            <label>
              <span>Key position</span>
              <input name="kpos" value={kpos} onChange={(e) => setKpos(e.target.value)} size={5} inputMode="numeric" />
            </label>
          </>
        )}
        {compare && (
          <label className="check">
            <input type="checkbox" checked={showCompare} onChange={(e) => setShowCompare(e.target.checked)} /> compare with a second prompt
          </label>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Asking…" : "Ask"}
        </button>
      </div>
      {compare && showCompare && (
        <label className="prompt">
          <span>Second prompt (right side; the first is left)</span>
          <textarea name="prompt2" value={prompt2} rows={2} onChange={(e) => setPrompt2(e.target.value)} onKeyDown={ctrlEnter} spellCheck={false} />
        </label>
      )}
      <p className="hint">Ctrl+Enter asks. Tokens are matched exactly, spaces included (a leading space is part of most word tokens).</p>
    </form>
  );
}

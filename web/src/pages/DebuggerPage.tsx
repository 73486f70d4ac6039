// The debugger: ask why the model does something, read the node table, intervene, trace.
// Every piece of state is in the URL; each panel fetches what it shows from the server.
import { useEffect } from "react";
import { useInfo } from "../lib/modelInfo";
import { get, post } from "../api/client";
import type { NodeSummary } from "../api/types";
import { ErrorBox, Loading } from "../components/Status";
import {
  debuggerParams,
  interventionsOf,
  parseDebugger,
  questionOf,
  type DebuggerState,
} from "../lib/debuggerState";
import { ablatedNodes, patchHooks, residualHooks, steeredNodes, suggestedCoefficient, toggleAblation, toggleSteer } from "../lib/interventions";
import { componentOf, parseNode } from "../lib/nodes";
import { graphLinkFor } from "../lib/graphState";
import { Link, navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";
import { AnswerPanel } from "./debugger/AnswerPanel";
import { AttentionPanel } from "./debugger/AttentionPanel";
import { ComparePanel } from "./debugger/ComparePanel";
import { InterventionsPanel } from "./debugger/InterventionsPanel";
import { NodeTablePanel } from "./debugger/NodeTablePanel";
import { QuestionForm } from "./debugger/QuestionForm";
import { TracePanel } from "./debugger/TracePanel";

export const LAST_DEBUGGER = "lenscope-last-debugger";

export function DebuggerPage({ params }: { params: URLSearchParams }) {
  const info = useInfo();
  const state = parseDebugger(params);
  const here = urlOf("/", debuggerParams(state));

  useEffect(() => {
    // a bare visit to / shows the demo question (once: an emptied prompt stays empty)
    if (!params.has("prompt") && !params.has("q")) {
      const demo = { ...state, prompt: info.demo.prompt, target: [info.demo.target], distractor: [info.demo.distractor] };
      navigate(urlOf("/", debuggerParams(demo)), true);
    }
  }, []); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => sessionStorage.setItem(LAST_DEBUGGER, here), [here]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName)) {
        e.preventDefault();
        document.querySelector<HTMLTextAreaElement>("textarea[name=prompt]")?.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const update = (patch: Partial<DebuggerState>) => navigate(urlOf("/", debuggerParams({ ...state, ...patch })));
  const question = questionOf(state);
  const interventions = interventionsOf(state);
  const attention = state.kind === "attention";
  const ready =
    state.prompt !== "" &&
    (attention || (state.target.length > 0 && (state.kind !== "logit_diff" || state.distractor.length > 0)));

  const base = { prompt: state.prompt, question, interventions, top_k: state.topk };
  const whyKey = ready && !attention ? JSON.stringify(["why", base, state.measure]) : null;
  const why = useAsync(whyKey, (signal) => post("/api/why", { ...base, measure: state.measure }, {}, signal));
  const baseKey = whyKey && interventions ? JSON.stringify(["base", state.prompt, question]) : null;
  const baseline = useAsync(baseKey, (signal) => post("/api/why", { prompt: state.prompt, question, top_k: 1, measure: 0 }, {}, signal));
  const cmpKey = ready && !attention && state.prompt2 ? JSON.stringify(["cmp", base, state.prompt2, state.measure]) : null;
  const cmp = useAsync(cmpKey, (signal) =>
    post("/api/compare", {
      question,
      left: { prompt: state.prompt, interventions },
      right: { prompt: state.prompt2, interventions },
      top_k: state.topk,
      measure: Math.min(state.measure, 4),
    }, {}, signal),
  );
  const traceKey = ready && state.trace.length ? JSON.stringify(["trace", base, state.trace, state.tdir]) : null;
  const trace = useAsync(traceKey, (signal) => post("/api/trace", { ...base, path: state.trace, direction: state.tdir }, {}, signal));
  const attKey = ready && attention ? JSON.stringify(["att", base]) : null;
  const att = useAsync(attKey, (signal) =>
    post("/api/attention", { prompt: state.prompt, question: question as { kind: "attention"; layer: number; head: number; query_pos: number | null; key_pos: number }, interventions, top_k: state.topk }, {}, signal),
  );
  const comps = why.data ? [...new Set(why.data.table.rows.map((r) => componentOf(r.node)))].filter((n) => parseNode(n)?.layer !== null).slice(0, 64) : [];
  const sumKey = info.records.available && comps.length ? comps.join(",") : null;
  const sums = useAsync(sumKey, (signal) => get("/api/summaries", { nodes: sumKey ?? "" }, {}, signal));
  const summaries: Record<string, NodeSummary> = sums.data?.nodes ?? {};

  const ablated = ablatedNodes(state.iv);
  const steered = steeredNodes(state.iv);
  const onAblate = (node: string) => update({ iv: toggleAblation(state.iv, node) });
  const onSteer = (node: string, activation?: number | null) => update({ iv: toggleSteer(state.iv, node, suggestedCoefficient(activation)) });
  const cfg = info.config as unknown as { n_layers: number; attn_only: boolean; positional: string };
  const onTrace = (hop: string) => update({ trace: [hop], tdir: "upstream" });
  const onDownstream = (node: string) => update({ trace: [node], tdir: "downstream" });
  const onAttend = (node: string) => {
    const n = parseNode(node);
    if (!n || n.kind !== "head") return;
    update({ kind: "attention", head: `L${n.layer}.H${n.index}`, qpos: n.position, kpos: n.key ?? 0, trace: [] });
  };
  const busy = why.loading || att.loading;
  const graphLink = graphLinkFor(state);

  return (
    <div className="debugger">
      <QuestionForm state={state} onAsk={(patch) => update({ ...patch, trace: [] })} busy={busy} />
      {!ready && <p className="empty">Write a prompt and the tokens to compare, then Ask.</p>}
      {ready && graphLink && (
        <p className="hint graph-link">
          <Link to={graphLink} data-action="graph">
            graph
          </Link>
          : this question&apos;s attribution graph (transcoder features, error nodes, embeddings and logits)
        </p>
      )}
      <InterventionsPanel
        items={state.iv}
        prompt2={state.prompt2}
        residualHooks={residualHooks(cfg)}
        patchHooks={patchHooks(cfg)}
        max={info.limits.max_interventions}
        onChange={(iv) => update({ iv })}
      />
      {attention && att.loading && !att.data && <Loading what="explaining the attention score" />}
      {attention && att.error && <ErrorBox error={att.error} />}
      {attention && att.data && <AttentionPanel data={att.data} ablated={ablated} onAblate={onAblate} onTrace={onTrace} />}
      {!attention && why.loading && <Loading what={why.data ? "updating" : "asking the model"} />}
      {!attention && why.error && <ErrorBox error={why.error} />}
      {!attention && why.data && !why.error && (
        <>
          <AnswerPanel result={why.data} baseline={interventions ? (baseline.data?.value ?? null) : null} state={state} update={update} />
          {baseline.error && <ErrorBox error={baseline.error} />}
          {state.prompt2 ? (
            <>
              {cmp.loading && <Loading what="comparing the prompts" />}
              {cmp.error && <ErrorBox error={cmp.error} />}
              {cmp.data && <ComparePanel data={cmp.data} state={state} update={update} />}
            </>
          ) : (
            <NodeTablePanel
              rows={why.data.table.rows}
              state={state}
              kinds={info.node_kinds}
              summaries={summaries}
              update={update}
              ablated={ablated}
              steered={steered}
              onAblate={onAblate}
              onSteer={onSteer}
              onTrace={onTrace}
              onDownstream={onDownstream}
              onAttend={onAttend}
            />
          )}
          {sums.error && <ErrorBox error={sums.error} />}
        </>
      )}
      <TracePanel
        path={state.trace}
        direction={state.tdir}
        data={trace.data}
        error={trace.error}
        loading={trace.loading}
        ablated={ablated}
        onPath={(path, direction) => update({ trace: path, tdir: direction ?? state.tdir })}
        onAblate={onAblate}
      />
    </div>
  );
}

// The attribution graph of a prompt: the question (the debugger's inputs, or the top logits),
// the graph's replacement and completeness scores, the graph itself, and interventions on pinned
// features in the real model. Every piece of state is in the URL.
import { useEffect, useMemo } from "react";
import { get } from "../api/client";
import { fetchGraph, intervene } from "../api/graph";
import type { GraphRequest } from "../api/graphTypes";
import type { NodeSummary } from "../api/types";
import { GraphView } from "../components/GraphView";
import { ErrorBox, Loading } from "../components/Status";
import { debuggerParams, DEFAULTS as DEBUGGER_DEFAULTS, type DebuggerState } from "../lib/debuggerState";
import { pct } from "../lib/format";
import { fromAttribution, SUPER_PREFIX } from "../lib/graphLayout";
import { editsToApi, graphPageParams, graphQuestion, graphReady, parseGraphPage, VIEW_DEFAULTS, type GraphKind, type GraphPageState } from "../lib/graphState";
import { useInfo } from "../lib/modelInfo";
import { componentOf, hasPage } from "../lib/nodes";
import { Link, navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";
import { QuestionForm } from "./debugger/QuestionForm";
import { GraphInterventions } from "./graph/GraphInterventions";

const KINDS: readonly GraphKind[] = ["logit_diff", "logit", "prob", "top"];
const SUMMARY_BATCH = 64; // the server's limit per /api/summaries call
const SUMMARY_MAX = 256;

export function GraphPage({ params }: { params: URLSearchParams }) {
  const info = useInfo();
  const state = parseGraphPage(params);
  const update = (patch: Partial<GraphPageState>, replace = false) => navigate(urlOf("/graph", graphPageParams({ ...state, ...patch })), replace);

  useEffect(() => {
    // a bare visit shows the demo question's graph
    if (!params.has("prompt")) update({ prompt: info.demo.prompt, kind: "logit_diff", target: [info.demo.target], distractor: [info.demo.distractor] }, true);
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  const question = graphQuestion(state);
  const ready = graphReady(state);
  const req: GraphRequest = { prompt: state.prompt };
  if (question) req.question = question;
  if (state.maxFeatureNodes !== null) req.max_feature_nodes = state.maxFeatureNodes;
  if (state.transcoders) req.transcoders = state.transcoders;
  const graph = useAsync(ready ? JSON.stringify(["graph", req]) : null, (signal) => fetchGraph(req, signal));
  const vg = useMemo(() => (graph.data ? fromAttribution(graph.data) : null), [graph.data]);

  const pages = vg ? [...new Set(vg.nodes.flatMap((n) => (n.page && hasPage(n.page) ? [componentOf(n.page)] : [])))].slice(0, SUMMARY_MAX) : [];
  const sumKey = info.records.available && pages.length ? pages.join(",") : null;
  const sums = useAsync(sumKey, async (signal) => {
    const parts = [];
    for (let i = 0; i < pages.length; i += SUMMARY_BATCH) parts.push(get("/api/summaries", { nodes: pages.slice(i, i + SUMMARY_BATCH).join(",") }, {}, signal));
    const maps = await Promise.all(parts);
    return Object.assign({}, ...maps.map((m) => m.nodes)) as Record<string, NodeSummary>;
  });

  // an edit of a group that was since ungrouped no longer applies
  const live = state.edits.filter((e) => !e.target.startsWith(SUPER_PREFIX) || state.view.supernodes.some((g) => SUPER_PREFIX + g.name === e.target));
  // interventions set features: a group's error and embedding members stay as they are
  const features = new Set(vg?.nodes.filter((n) => n.kind === "feature").map((n) => n.id) ?? []);
  const edits = editsToApi(live, state.view.supernodes.map((g) => ({ ...g, members: g.members.filter((m) => features.has(m)) })));
  const ivKey = ready && edits.length ? JSON.stringify(["intervene", state.prompt, edits]) : null;
  const iv = useAsync(ivKey, (signal) => intervene({ prompt: state.prompt, edits }, signal));

  const formState: DebuggerState = { ...DEBUGGER_DEFAULTS, prompt: state.prompt, kind: state.kind, target: state.target, distractor: state.distractor };
  const onAsk = (patch: Partial<DebuggerState>) => {
    const kind = (KINDS as readonly string[]).includes(patch.kind ?? "") ? (patch.kind as GraphKind) : state.kind;
    // node ids belong to one prompt's graph: a new question starts with no pins, groups or edits
    update({
      prompt: patch.prompt ?? state.prompt,
      kind,
      target: patch.target ?? state.target,
      distractor: patch.distractor ?? state.distractor,
      edits: [],
      view: { ...state.view, pinned: [], supernodes: [] },
    });
  };
  const debuggerUrl = state.kind === "top" ? null : urlOf("/", debuggerParams(formState));

  return (
    <div className="graph-page">
      <QuestionForm state={formState} onAsk={onAsk} busy={graph.loading} kinds={KINDS} compare={false} />
      {!ready && <p className="empty">Write a prompt and the tokens to explain (or pick the top logits), then Ask.</p>}
      {graph.loading && <Loading what={graph.data ? "updating the graph" : "building the attribution graph"} />}
      {graph.error && <ErrorBox error={graph.error} />}
      {graph.data && vg && !graph.error && (
        <section className="panel" data-testid="graph-panel">
          <h1>
            Attribution graph <small>{graph.data.metadata.scan ? `transcoders ${graph.data.metadata.scan}` : ""}</small>
          </h1>
          <div className="scores" data-testid="graph-scores">
            <span className="score" title="the share of the graph's influence on the logits that flows from embeddings through features rather than error nodes">
              replacement score <strong data-score="replacement" data-value={graph.data.scores.replacement}>{pct(graph.data.scores.replacement)}</strong>
            </span>
            <span className="score" title="the share of every node's input that comes from nodes rather than error nodes">
              completeness score <strong data-score="completeness" data-value={graph.data.scores.completeness}>{pct(graph.data.scores.completeness)}</strong>
            </span>
            {debuggerUrl && (
              <Link to={debuggerUrl} data-action="debugger">
                this question in the debugger
              </Link>
            )}
            <button type="button" className="link" onClick={() => update({ view: { ...VIEW_DEFAULTS } })} title="thresholds back to the server's pruning, no pins or groups">
              reset the view
            </button>
          </div>
          {sums.error && <p className="hint">No explanations on hover: {sums.error.message}</p>}
          <div className="graph-layout">
            <GraphView graph={vg} view={state.view} onView={(view) => update({ view }, true)} summaries={sums.data ?? {}} />
            <GraphInterventions
              graph={vg}
              view={state.view}
              edits={live}
              onEdits={(e) => update({ edits: e })}
              result={iv.data}
              error={iv.error}
              loading={iv.loading}
            />
          </div>
        </section>
      )}
    </div>
  );
}

// Circuit discovery for a task: pick the task, the method and the ablation, run, and read the
// circuit in the same graph view as attribution graphs with its faithfulness curve beside it.
// Every number names the ablation it was measured with. The settings live in the URL.
import { useEffect, useState, type FormEvent } from "react";
import { discover, discoverTasks } from "../api/graph";
import type { Circuit, DiscoverAblation, DiscoverMethod, DiscoverRequest } from "../api/graphTypes";
import { GraphView } from "../components/GraphView";
import { LinePlot } from "../components/LinePlot";
import { ErrorBox, Loading } from "../components/Status";
import { fmt, pct } from "../lib/format";
import { fromCircuit } from "../lib/graphLayout";
import { ABLATIONS, discoverPageParams, hasSteps, METHODS, parseDiscoverPage, VIEW_DEFAULTS, type DiscoverPageState, type ViewState } from "../lib/graphState";
import { navigate, urlOf } from "../lib/router";
import { useAsync } from "../lib/useAsync";

export function DiscoverPage({ params }: { params: URLSearchParams }) {
  const state = parseDiscoverPage(params);
  const tasks = useAsync("discover-tasks", (signal) => discoverTasks(signal));
  const go = (s: DiscoverPageState, replace = false) => navigate(urlOf("/discover", discoverPageParams(s)), replace);

  const req: DiscoverRequest = { task: state.task, method: state.method, ablation: state.ablation };
  if (state.steps !== null && hasSteps(state.method)) req.steps = state.steps;
  if (state.tau !== null && state.method === "acdc") req.tau = state.tau;
  if (state.topN !== null) req.top_n = state.topN;
  const key = state.task ? JSON.stringify(["discover", req]) : null;
  const circuit = useAsync(key, (signal) => discover(req, signal));

  return (
    <div className="discover-page">
      <DiscoverForm
        state={state}
        tasks={tasks.data?.map((t) => ({ name: t.name, label: t.model ? `${t.name} (${t.model})` : t.name, description: t.description })) ?? []}
        busy={circuit.loading}
        onRun={(s) => go({ ...s, view: { ...VIEW_DEFAULTS } })}
      />
      {tasks.loading && <Loading what="listing the tasks" />}
      {tasks.error && <ErrorBox error={tasks.error} />}
      {!state.task && tasks.data && <p className="empty">Pick a task, a method and an ablation, then Run.</p>}
      {circuit.loading && <Loading what={`discovering the circuit (${state.method}, ${state.ablation} ablation)`} />}
      {circuit.error && <ErrorBox error={circuit.error} />}
      {circuit.data && !circuit.error && <CircuitView data={circuit.data} task={state.task} view={state.view} onView={(view) => go({ ...state, view }, true)} />}
    </div>
  );
}

interface TaskOption {
  name: string;
  label: string;
  description: string;
}

function DiscoverForm({ state, tasks, busy, onRun }: { state: DiscoverPageState; tasks: TaskOption[]; busy: boolean; onRun: (s: DiscoverPageState) => void }) {
  const [task, setTask] = useState(state.task);
  const [method, setMethod] = useState<DiscoverMethod>(state.method);
  const [ablation, setAblation] = useState<DiscoverAblation>(state.ablation);
  const [steps, setSteps] = useState(state.steps === null ? "" : String(state.steps));
  const [tau, setTau] = useState(state.tau === null ? "" : String(state.tau));
  const [topN, setTopN] = useState(state.topN === null ? "" : String(state.topN));
  useEffect(() => {
    setTask(state.task);
    setMethod(state.method);
    setAblation(state.ablation);
    setSteps(state.steps === null ? "" : String(state.steps));
    setTau(state.tau === null ? "" : String(state.tau));
    setTopN(state.topN === null ? "" : String(state.topN));
  }, [state.task, state.method, state.ablation, state.steps, state.tau, state.topN]);
  useEffect(() => {
    if (!task && tasks.length) setTask(tasks[0].name);
  }, [tasks, task]);

  const bad = (v: string, integer: boolean) => v.trim() !== "" && !(Number(v) > 0 && (!integer || Number.isInteger(Number(v))));
  const invalid = bad(steps, true) || bad(tau, false) || bad(topN, true);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!task || invalid) return;
    const n = (v: string) => (v.trim() === "" ? null : Number(v));
    onRun({ ...state, task, method, ablation, steps: n(steps), tau: n(tau), topN: n(topN) });
  };
  const description = tasks.find((t) => t.name === task)?.description;
  return (
    <form className="question" onSubmit={submit} aria-label="discovery">
      <div className="row">
        <label>
          <span>Task</span>
          <select name="task" value={task} onChange={(e) => setTask(e.target.value)}>
            {!tasks.some((t) => t.name === task) && task && <option value={task}>{task}</option>}
            {tasks.map((t) => (
              <option key={t.name} value={t.name}>
                {t.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Method</span>
          <select name="method" value={method} onChange={(e) => setMethod(e.target.value as DiscoverMethod)}>
            {METHODS.map((m) => (
              <option key={m.value} value={m.value}>
                {m.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Ablation</span>
          <select name="ablation" value={ablation} onChange={(e) => setAblation(e.target.value as DiscoverAblation)}>
            {ABLATIONS.map((a) => (
              <option key={a.value} value={a.value}>
                {a.label}
              </option>
            ))}
          </select>
        </label>
        {hasSteps(method) && (
          <label>
            <span>Steps</span>
            <input name="steps" value={steps} onChange={(e) => setSteps(e.target.value)} placeholder="default" size={6} inputMode="numeric" aria-invalid={bad(steps, true)} />
          </label>
        )}
        {method === "acdc" && (
          <label>
            <span>τ</span>
            <input name="tau" value={tau} onChange={(e) => setTau(e.target.value)} placeholder="default" size={6} aria-invalid={bad(tau, false)} />
          </label>
        )}
        <label>
          <span>Top edges</span>
          <input name="top_n" value={topN} onChange={(e) => setTopN(e.target.value)} placeholder="default" size={6} inputMode="numeric" aria-invalid={bad(topN, true)} />
        </label>
        <button type="submit" className="primary" disabled={busy || !task || invalid}>
          {busy ? "Running…" : "Run"}
        </button>
      </div>
      {description && <p className="hint">{description}</p>}
    </form>
  );
}

function CircuitView({ data, task, view, onView }: { data: Circuit; task: string; view: ViewState; onView: (v: ViewState) => void }) {
  const graph = fromCircuit(data);
  const f = data.faithfulness;
  const method = METHODS.find((m) => m.value === data.method)?.label ?? data.method;
  const marks = [
    ...(f.n80 !== null ? [{ x: f.n80, label: "n80" }] : []),
    ...(f.n90 !== null ? [{ x: f.n90, label: "n90" }] : []),
  ];
  return (
    <section className="panel" data-testid="circuit-panel">
      <h1>
        Circuit for {task} <small>{method} · {data.ablation} ablation</small>
      </h1>
      <div className="scores" data-testid="faithfulness">
        <span className="score" title="the area under the faithfulness curve (edges kept on a 0..1 scale)">
          area <strong data-score="area" data-value={f.area}>{fmt(f.area)}</strong>
        </span>
        <span className="score" title="the fewest edges whose circuit alone reaches 80% of the full model's metric">
          80% at <strong data-score="n80" data-value={f.n80 ?? ""}>{f.n80 === null ? "never" : `${f.n80} edges`}</strong>
        </span>
        <span className="score" title="the fewest edges whose circuit alone reaches 90% of the full model's metric">
          90% at <strong data-score="n90" data-value={f.n90 ?? ""}>{f.n90 === null ? "never" : `${f.n90} edges`}</strong>
        </span>
        <span className="score" title="the full model's metric with the circuit knocked out, as a fraction of its own (lower: the circuit is more complete)">
          completeness <strong data-score="completeness" data-value={f.completeness}>{pct(f.completeness)}</strong>
        </span>
      </div>
      <div className="graph-layout">
        <GraphView graph={graph} view={view} onView={onView} gap={48} testId="circuit-view" />
        <div className="panel" data-testid="faithfulness-plot">
          <h2>Faithfulness ({data.ablation} ablation)</h2>
          <LinePlot
            points={f.curve}
            xLabel="edges kept"
            yLabel="metric / full model's"
            guides={[
              { y: 0.8, label: "80%" },
              { y: 0.9, label: "90%" },
            ]}
            marks={marks}
            title={`the circuit alone (${method}, ${data.ablation} ablation) as a fraction of the full model, against edges kept`}
            testId="faithfulness-curve"
          />
        </div>
      </div>
    </section>
  );
}

import { act, cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ModelInfo } from "../api/types";
import { InfoContext } from "../lib/modelInfo";
import { useLocation } from "../lib/router";
import { CIRCUIT, GRAPH, INTERVENE_ANSWER, TASKS } from "../test/graphFixtures";
import { DebuggerPage } from "./DebuggerPage";
import { DiscoverPage } from "./DiscoverPage";
import { GraphPage } from "./GraphPage";

const INFO = {
  name: "mini",
  config: { n_layers: 2, n_heads: 4, d_mlp: 64, attn_only: false, positional: "learned" },
  saes: [],
  node_kinds: ["head", "neuron"],
  limits: { max_interventions: 8 },
  records: { available: false },
  demo: { prompt: "def f(x", target: ")", distractor: "," },
} as unknown as ModelInfo;

type Call = { url: string; body: unknown };

/** A fetch answering each route with its fixture, recording the requests. */
function server(calls: Call[]) {
  return vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, body: init.body ? JSON.parse(String(init.body)) : null });
    const answer = url.startsWith("/api/graph/intervene") ? INTERVENE_ANSWER : url.startsWith("/api/graph") ? GRAPH : url.startsWith("/api/discover/tasks") ? TASKS : url.startsWith("/api/discover") ? CIRCUIT : null;
    return new Response(JSON.stringify(answer ?? { error: `no route ${url}` }), { status: answer ? 200 : 404 });
  });
}

function App({ page }: { page: "graph" | "discover" }) {
  const loc = useLocation();
  return <InfoContext.Provider value={INFO}>{page === "graph" ? <GraphPage params={loc.params} /> : <DiscoverPage params={loc.params} />}</InfoContext.Provider>;
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("GraphPage", () => {
  it("asks for the URL's question, shows the scores and the graph, and intervenes on pinned features", async () => {
    const calls: Call[] = [];
    vi.stubGlobal("fetch", server(calls));
    const sn = encodeURIComponent(JSON.stringify([["args", "1_7_4", "0_-1_2"]]));
    window.history.replaceState(null, "", `/graph?prompt=def+f%28x&target=%29&distractor=%2C&pinnedIds=0_12_2,1_7_4,0_-1_2&supernodes=${sn}`);
    const { container, findByTestId, getByTestId } = render(<App page="graph" />);
    await findByTestId("graph-panel");
    expect(calls[0]).toEqual({ url: "/api/graph", body: { prompt: "def f(x", question: { kind: "logit_diff", target: [")"], distractor: [","] } } });
    expect(container.querySelector("[data-score=replacement]")!.textContent).toBe("81.3%");
    expect(container.querySelector("[data-score=completeness]")!.textContent).toBe("90.0%");
    expect(container.querySelectorAll("g.gnode")).toHaveLength(GRAPH.nodes.length - 1); // two members drawn as one group
    expect(container.querySelector('g.gnode[data-node="supernode:args"]')).not.toBeNull();

    // the panel offers the pinned feature and the group; steering defaults to twice the activation
    const panel = getByTestId("graph-interventions");
    const rows = [...panel.querySelectorAll("li[data-candidate]")].map((li) => li.getAttribute("data-candidate"));
    expect(rows).toEqual(["0_12_2", "supernode:args"]);
    expect((panel.querySelector('li[data-candidate="0_12_2"] input') as HTMLInputElement).value).toBe("3");
    act(() => fireEvent.click(panel.querySelector('li[data-candidate="supernode:args"] [data-action=ablate]')!));
    await findByTestId("before-after");
    expect(window.location.search).toContain("edit=ablate%7Esupernode%3Aargs");
    expect(calls.at(-1)).toEqual({ url: "/api/graph/intervene", body: { prompt: "def f(x", edits: [{ node_id: "1_7_4", op: "ablate" }] } }); // the group's error node is no feature
    const cells = (col: string) => [...container.querySelectorAll(`[data-testid=before-after] td[data-column=${col}]`)].map((td) => td.getAttribute("data-value"));
    expect([...container.querySelectorAll("[data-testid=before-after] tbody tr")].map((tr) => tr.getAttribute("data-token"))).toEqual([",", ")", " ="]);
    expect(cells("before")).toEqual(["0.2", "0.7", ""]);
    expect(cells("after")).toEqual(["0.55", "0.3", "0.05"]);

    act(() => fireEvent.click(panel.querySelector('li[data-candidate="0_12_2"] [data-action=steer]')!));
    await waitFor(() => expect((calls.at(-1)!.body as { edits: unknown[] }).edits).toHaveLength(2));
    expect(calls.at(-1)!.body).toEqual({
      prompt: "def f(x",
      edits: [{ node_id: "0_12_2", op: "steer", value: 3 }, { node_id: "1_7_4", op: "ablate" }],
    });
  });

  it("asks for the top logits without a question and shows the server's refusal", async () => {
    const calls: Call[] = [];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, body: JSON.parse(String(init.body)) });
      return new Response(JSON.stringify({ error: "no transcoders for mini: pass --transcoders", type: "InputError" }), { status: 400 });
    }));
    window.history.replaceState(null, "", "/graph?prompt=abc&q=top&mfn=50&transcoders=mini-clt");
    const { container, findByRole } = render(<App page="graph" />);
    expect((await findByRole("alert")).textContent).toContain("no transcoders for mini: pass --transcoders");
    // the debugger's question inputs, with the top logits and without attention or a second prompt
    expect([...container.querySelectorAll("select[name=kind] option")].map((o) => o.getAttribute("value"))).toEqual(["logit_diff", "logit", "prob", "top"]);
    expect((container.querySelector("select[name=kind]") as HTMLSelectElement).value).toBe("top");
    expect(container.querySelector("input[name=target]")).toBeNull();
    expect(container.textContent).not.toContain("compare with a second prompt");
    expect(calls[0]).toEqual({ url: "/api/graph", body: { prompt: "abc", max_feature_nodes: 50, transcoders: "mini-clt" } });
  });
});

describe("DiscoverPage", () => {
  it("runs the chosen method and shows the circuit with its faithfulness curve", async () => {
    const calls: Call[] = [];
    vi.stubGlobal("fetch", server(calls));
    window.history.replaceState(null, "", "/discover");
    const { container, findByTestId, getByTestId } = render(<App page="discover" />);
    await waitFor(() => expect(container.querySelectorAll("select[name=task] option")).toHaveLength(2));
    expect(calls.map((c) => c.url)).toEqual(["/api/discover/tasks"]); // nothing runs before Run
    fireEvent.change(container.querySelector("select[name=ablation]")!, { target: { value: "mean" } });
    fireEvent.change(container.querySelector("input[name=steps]")!, { target: { value: "8" } });
    act(() => fireEvent.click(container.querySelector("form[aria-label=discovery] button[type=submit]")!));
    await findByTestId("circuit-panel");
    expect(calls.at(-1)).toEqual({ url: "/api/discover", body: { task: "induction", method: "eap-ig", ablation: "mean", steps: 8 } });
    expect(window.location.search).toBe("?task=induction&method=eap-ig&ablation=mean&steps=8");
    const view = getByTestId("circuit-view");
    expect([...view.querySelectorAll("g.gnode")].map((g) => g.getAttribute("data-node")).sort()).toEqual(["L0.H2", "L1.H1", "L1.H3", "embed", "logits"]);
    const keys = [...view.querySelectorAll("g.edges path[data-receiver=k]")].map((p) => `${p.getAttribute("data-source")}>${p.getAttribute("data-target")}`);
    expect(keys.sort()).toEqual(["L0.H2>L1.H1", "L0.H2>L1.H3"]);
    expect(getByTestId("circuit-panel").querySelector("h1")!.textContent).toContain("resample ablation");
    expect(container.querySelector("[data-score=n80]")!.textContent).toBe("3 edges");
    expect(container.querySelector("[data-score=n90]")!.textContent).toBe("4 edges");
    const plot = getByTestId("faithfulness-curve");
    expect(plot.querySelectorAll("circle.point")).toHaveLength(CIRCUIT.faithfulness.curve.length);
    expect([...plot.querySelectorAll("g.mark")].map((m) => [m.getAttribute("data-mark"), m.getAttribute("data-x")])).toEqual([
      ["n80", "3"],
      ["n90", "4"],
    ]);
  });
});

describe("the debugger's graph link", () => {
  it("carries the prompt and question to the graph page, and attention questions have none", () => {
    vi.stubGlobal("fetch", vi.fn(() => new Promise(() => {}))); // answers never come: only the link matters
    const params = new URLSearchParams("prompt=def+f%28x&target=%29&distractor=%2C&distractor=+%3D&k=20");
    const { container, unmount } = render(
      <InfoContext.Provider value={INFO}>
        <DebuggerPage params={params} />
      </InfoContext.Provider>,
    );
    const href = container.querySelector("a[data-action=graph]")!.getAttribute("href")!;
    const url = new URL(href, "http://x");
    expect(url.pathname).toBe("/graph");
    expect(url.searchParams.get("prompt")).toBe("def f(x");
    expect(url.searchParams.getAll("target")).toEqual([")"]);
    expect(url.searchParams.getAll("distractor")).toEqual([",", " ="]);
    unmount();
    const att = render(
      <InfoContext.Provider value={INFO}>
        <DebuggerPage params={new URLSearchParams("prompt=abc&q=attention&head=L1.H2&kpos=0")} />
      </InfoContext.Provider>,
    );
    expect(att.container.querySelector("a[data-action=graph]")).toBeNull();
  });
});

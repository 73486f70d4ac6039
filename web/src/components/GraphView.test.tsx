import { cleanup, fireEvent, render } from "@testing-library/react";
import { useState } from "react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { NodeSummary } from "../api/types";
import { edgeStyle, fromAttribution } from "../lib/graphLayout";
import { VIEW_DEFAULTS, type ViewState } from "../lib/graphState";
import { GRAPH } from "../test/graphFixtures";
import { GraphView } from "./GraphView";

const G = fromAttribution(GRAPH);
const SUMMARIES: Record<string, NodeSummary> = {
  "L0.transcoder.F12": {
    node: "L0.transcoder.F12",
    top_tokens: ["(", "[("],
    boosts: ["x"],
    explanation: { node_id: "L0.transcoder.F12", explainer: "offline", text: "fires on opening parentheses", score: 0.61, control: 0.02, n_tokens: 100, status: "ok" },
  },
};

function Harness({ start = VIEW_DEFAULTS, seen = [] as ViewState[] }: { start?: ViewState; seen?: ViewState[] }) {
  const [view, setView] = useState(start);
  return (
    <GraphView
      graph={G}
      view={view}
      summaries={SUMMARIES}
      onView={(v) => {
        seen.push(v);
        setView(v);
      }}
    />
  );
}

const drawnNodes = (c: HTMLElement) => [...c.querySelectorAll("g.gnode")].map((g) => g.getAttribute("data-node"));
const paths = (c: HTMLElement) => [...c.querySelectorAll("g.edges path")];
const nodeEl = (c: HTMLElement, id: string) => c.querySelector(`g.gnode[data-node="${id}"]`)!;

beforeEach(() => window.history.replaceState(null, "", "/graph?prompt=x"));
afterEach(cleanup);

describe("GraphView", () => {
  it("draws every node and edge, each edge's width and colour from its signed weight", () => {
    const { container, getByTestId } = render(<Harness />);
    expect(drawnNodes(container).sort()).toEqual(GRAPH.nodes.map((n) => n.node_id).sort());
    const ps = paths(container);
    expect(ps).toHaveLength(GRAPH.links.length);
    for (const p of ps) {
      const w = Number(p.getAttribute("data-weight"));
      const st = edgeStyle(w, 3);
      expect(Number(p.getAttribute("stroke-width"))).toBeCloseTo(st.width, 9);
      expect(p.getAttribute("stroke")).toBe(st.color);
    }
    expect(getByTestId("graph-counts").textContent).toBe("11 of 11 nodes · 8 of 8 edges");
    // the head an edge travels through is named on it
    const via = ps.find((p) => p.getAttribute("data-source") === "E_104_4" && p.getAttribute("data-target") === "1_7_4")!;
    expect(via.textContent).toContain("through L1.H3");
  });

  it("filters by the sliders in the browser", () => {
    const seen: ViewState[] = [];
    const { container, getByTestId } = render(<Harness seen={seen} />);
    fireEvent.change(container.querySelector("input[name=edge-threshold]")!, { target: { value: "0.5" } });
    expect(seen.at(-1)!.edgeThreshold).toBe(0.5);
    expect(paths(container).map((p) => Number(p.getAttribute("data-weight"))).sort()).toEqual([2, 3]);
    expect(drawnNodes(container)).not.toContain("0_-1_2");
    fireEvent.change(container.querySelector("input[name=edge-threshold]")!, { target: { value: "0" } });
    fireEvent.change(container.querySelector("input[name=node-threshold]")!, { target: { value: "0.55" } });
    expect(drawnNodes(container)).not.toContain("0_-1_2"); // influence 0.6
    expect(drawnNodes(container)).not.toContain("1_3_4");
    expect(drawnNodes(container)).toContain("1_7_4"); // 0.5
    expect(getByTestId("graph-counts").textContent).toBe("9 of 11 nodes · 6 of 8 edges");
  });

  it("hover shows the node's label and its explanation; a click opens its node page", () => {
    const { container, getByTestId, queryByTestId } = render(<Harness />);
    fireEvent.mouseEnter(nodeEl(container, "0_12_2"));
    const card = getByTestId("graph-hover");
    expect(card.textContent).toContain("F12");
    expect(card.textContent).toContain("an open parenthesis");
    expect(getByTestId("graph-hover-explanation").textContent).toContain("fires on opening parentheses");
    fireEvent.mouseEnter(nodeEl(container, "1_3_4"));
    expect(queryByTestId("graph-hover-explanation")).toBeNull();
    fireEvent.click(nodeEl(container, "1_3_4")); // no page: stays
    expect(window.location.pathname).toBe("/graph");
    fireEvent.click(nodeEl(container, "0_12_2"));
    expect(window.location.pathname).toBe("/node/L0.transcoder.F12");
  });

  it("pins nodes and groups them into a supernode drawn as one node", () => {
    const seen: ViewState[] = [];
    const { container, getByTestId } = render(<Harness seen={seen} />);
    fireEvent.click(nodeEl(container, "0_12_2"), { shiftKey: true });
    fireEvent.click(container.querySelector("button[data-mode=pin]")!);
    fireEvent.click(nodeEl(container, "0_-1_2"));
    expect(seen.at(-1)!.pinned).toEqual(["0_12_2", "0_-1_2"]);
    expect(window.location.pathname).toBe("/graph");
    expect(nodeEl(container, "0_12_2").classList.contains("pinned")).toBe(true);
    fireEvent.click(container.querySelector("button[data-action=group]")!);
    expect(getByTestId("graph-pins").textContent).toContain("give the group a name");
    fireEvent.change(container.querySelector("input[name=group-name]")!, { target: { value: "paren" } });
    fireEvent.click(container.querySelector("button[data-action=group]")!);
    expect(seen.at(-1)!.supernodes).toEqual([{ name: "paren", members: ["0_12_2", "0_-1_2"] }]);
    const sup = nodeEl(container, "supernode:paren");
    expect(sup.getAttribute("data-kind")).toBe("supernode");
    expect(drawnNodes(container)).not.toContain("0_12_2");
    expect(drawnNodes(container)).not.toContain("0_-1_2");
    const out = paths(container).filter((p) => p.getAttribute("data-source") === "supernode:paren" && p.getAttribute("data-target") === "1_7_4");
    expect(out.map((p) => Number(p.getAttribute("data-weight")))).toEqual([1.5]);
    fireEvent.click(container.querySelector("[data-supernode=paren] button")!);
    expect(seen.at(-1)!.supernodes).toEqual([]);
    expect(drawnNodes(container)).toContain("0_12_2");
    // unpin
    fireEvent.click(nodeEl(container, "0_12_2"));
    expect(seen.at(-1)!.pinned).toEqual(["0_-1_2"]);
  });
});

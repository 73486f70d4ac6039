// @vitest-environment node
import { describe, expect, it } from "vitest";
import { CIRCUIT, GRAPH } from "../test/graphFixtures";
import {
  collapseSupernodes,
  edgeStyle,
  filterGraph,
  fromAttribution,
  fromCircuit,
  groupNodes,
  groupProblem,
  layout,
  LAYOUT,
  maxAbsWeight,
  NEGATIVE,
  POSITIVE,
  SUPER_PREFIX,
  ungroup,
  type VGraph,
} from "./graphLayout";

const g = fromAttribution(GRAPH);
const node = (id: string) => g.nodes.find((n) => n.id === id)!;
const ids = (x: VGraph) => x.nodes.map((n) => n.id).sort();

describe("fromAttribution", () => {
  it("puts embeddings at the bottom, layer l on row l + 1 and logits on top", () => {
    expect(g.rows).toEqual(["emb", "L0", "L1", "logits"]);
    expect(g.columns).toEqual(["def", " f", "(", "x", ")"]);
    expect(node("E_102_2")).toMatchObject({ kind: "embedding", row: 0, col: 2, label: "(" });
    expect(node("0_12_2")).toMatchObject({ kind: "feature", row: 1, col: 2, label: "F12", page: "L0.transcoder.F12", activation: 1.5, influence: 0.3 });
    expect(node("0_-1_2")).toMatchObject({ kind: "error", row: 1, col: 2 });
    expect(node("1_7_4")).toMatchObject({ kind: "feature", row: 2, col: 4, label: "F7" });
    expect(node("3_21_4")).toMatchObject({ kind: "logit", row: 3, col: 4, label: ")", influence: null });
    expect(node("0_12_2").title).toContain("an open parenthesis");
    expect(g.links.find((l) => l.source === "E_104_4" && l.target === "1_7_4")?.head).toBe("L1.H3");
    expect(g.links.filter((l) => l.head !== null)).toHaveLength(1);
  });
});

describe("layout", () => {
  const lay = layout(g);
  it("places rows bottom-up and columns left to right, nodes of a cell inside their column", () => {
    for (const n of g.nodes) {
      const p = lay.pos.get(n.id)!;
      expect(p.y).toBe(LAYOUT.top + (g.rows.length - 1 - n.row) * LAYOUT.rowHeight);
      expect(p.x).toBeGreaterThan(lay.left + n.col * lay.colWidth);
      expect(p.x).toBeLessThan(lay.left + (n.col + 1) * lay.colWidth);
    }
    // brute force over pairs: a higher row is higher on screen, a later column further right
    for (const a of g.nodes)
      for (const b of g.nodes) {
        const pa = lay.pos.get(a.id)!;
        const pb = lay.pos.get(b.id)!;
        if (a.row > b.row) expect(pa.y).toBeLessThan(pb.y);
        if (a.col < b.col) expect(pa.x).toBeLessThan(pb.x);
      }
    expect(lay.width).toBeGreaterThanOrEqual(LAYOUT.minWidth);
    expect(lay.height).toBe(LAYOUT.top + 3 * LAYOUT.rowHeight + LAYOUT.bottom);
  });

  it("spreads a cell's nodes evenly, most influential first", () => {
    const a = lay.pos.get("0_12_2")!; // influence 0.3
    const b = lay.pos.get("0_-1_2")!; // influence 0.6
    const x0 = lay.left + 2 * lay.colWidth;
    expect(a.x).toBeCloseTo(x0 + lay.colWidth / 3, 9);
    expect(b.x).toBeCloseTo(x0 + (2 * lay.colWidth) / 3, 9);
    // logits: the more probable one first
    expect(lay.pos.get("3_21_4")!.x).toBeLessThan(lay.pos.get("3_22_4")!.x);
  });

  it("widens columns for crowded cells", () => {
    const crowd: VGraph = {
      rows: ["emb", "L0", "logits"],
      columns: ["a"],
      links: [],
      nodes: Array.from({ length: 50 }, (_, i) => ({ id: `n${i}`, kind: "feature", row: 1, col: 0, order: i, label: "", title: "", influence: null, activation: null, page: null, members: [] })),
    };
    const l = layout(crowd, 16);
    expect(l.colWidth).toBe(51 * 16);
    const xs = crowd.nodes.map((n) => l.pos.get(n.id)!.x);
    xs.slice(1).forEach((x, i) => expect(x - xs[i]).toBeCloseTo(16, 9));
  });
});

describe("filterGraph", () => {
  it("keeps everything at the loosest thresholds", () => {
    const f = filterGraph(g, { nodeThreshold: 1, edgeThreshold: 0, pinned: [] });
    expect(ids(f)).toEqual(ids(g));
    expect(f.links).toHaveLength(g.links.length);
  });

  it("drops nodes above the influence threshold with their links, keeps embeddings and logits", () => {
    const f = filterGraph(g, { nodeThreshold: 0.8, edgeThreshold: 0, pinned: [] });
    // brute force: which nodes/links should stay
    const keptNodes = new Set(g.nodes.filter((n) => n.kind === "embedding" || n.kind === "logit" || n.influence === null || n.influence <= 0.8).map((n) => n.id));
    const keptLinks = g.links.filter((l) => keptNodes.has(l.source) && keptNodes.has(l.target));
    expect(f.links).toEqual(keptLinks);
    expect(ids(f)).not.toContain("1_3_4");
    expect(ids(f)).toContain("E_100_0"); // an embedding with no link stays
    expect(ids(f)).toContain("3_22_4");
  });

  it("keeps links of at least the threshold's share of the largest |weight| and drops orphans", () => {
    expect(maxAbsWeight(g.links)).toBe(3);
    const f = filterGraph(g, { nodeThreshold: 1, edgeThreshold: 0.5, pinned: [] });
    expect(f.links.map((l) => l.weight).sort()).toEqual([2, 3]);
    expect(ids(f)).not.toContain("0_-1_2"); // its only link (-0.5) is gone
    expect(ids(f)).not.toContain("1_3_4");
    expect(ids(f)).toContain("0_12_2");
    const pinned = filterGraph(g, { nodeThreshold: 0.1, edgeThreshold: 0.5, pinned: ["1_3_4"] });
    expect(ids(pinned)).toContain("1_3_4");
  });
});

describe("supernodes", () => {
  it("groups, regroups and ungroups: a node is in one group at most", () => {
    let s = groupNodes([], "paren", ["0_12_2", "0_-1_2"]);
    expect(s).toEqual([{ name: "paren", members: ["0_12_2", "0_-1_2"] }]);
    s = groupNodes(s, "args", ["0_-1_2", "1_7_4"]);
    expect(s).toEqual([
      { name: "paren", members: ["0_12_2"] },
      { name: "args", members: ["0_-1_2", "1_7_4"] },
    ]);
    s = groupNodes(s, "all", ["0_12_2", "1_7_4"]);
    expect(s.map((x) => x.name)).toEqual(["args", "all"]);
    expect(s[0].members).toEqual(["0_-1_2"]);
    expect(ungroup(s, "args")).toEqual([{ name: "all", members: ["0_12_2", "1_7_4"] }]);
    expect(groupProblem(s, " ", ["a", "b"])).toMatch(/name/);
    expect(groupProblem(s, "x", ["a"])).toMatch(/two/);
    expect(groupProblem(s, "all", ["a", "b"])).toMatch(/already/);
    expect(groupProblem(s, "new", ["a", "b"])).toBeNull();
  });

  it("draws a group as one node at its members' centroid with their links summed", () => {
    const lay = layout(g);
    const { graph, pos } = collapseSupernodes(g, [{ name: "paren", members: ["0_12_2", "0_-1_2"] }], lay.pos);
    const id = SUPER_PREFIX + "paren";
    expect(ids(graph)).not.toContain("0_12_2");
    expect(ids(graph)).not.toContain("0_-1_2");
    const sup = graph.nodes.find((n) => n.id === id)!;
    expect(sup).toMatchObject({ kind: "supernode", label: "paren", members: ["0_12_2", "0_-1_2"] });
    const a = lay.pos.get("0_12_2")!;
    const b = lay.pos.get("0_-1_2")!;
    expect(pos.get(id)).toEqual({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
    const w = (s: string, t: string) => graph.links.filter((l) => l.source === s && l.target === t).map((l) => l.weight);
    expect(w(id, "1_7_4")).toEqual([2.0 + -0.5]);
    expect(w("E_102_2", id)).toEqual([1.0]);
    expect(w(id, "3_22_4")).toEqual([-0.4]);
    // identity: links between different ends keep their total weight; none is lost or doubled
    const total = (ls: { weight: number }[]) => ls.reduce((x, l) => x + l.weight, 0);
    expect(total(graph.links)).toBeCloseTo(total(g.links), 12);
    expect(graph.links).toHaveLength(g.links.length - 1);
  });

  it("drops links inside a group", () => {
    const { graph } = collapseSupernodes(g, [{ name: "chain", members: ["0_12_2", "1_7_4"] }], layout(g).pos);
    expect(graph.links.some((l) => l.source === l.target)).toBe(false);
    const inside = g.links.filter((l) => l.source === "0_12_2" && l.target === "1_7_4");
    const total = (ls: { weight: number }[]) => ls.reduce((x, l) => x + l.weight, 0);
    expect(total(graph.links)).toBeCloseTo(total(g.links) - total(inside), 12);
  });
});

describe("edgeStyle", () => {
  it("grows with |weight|, saturates at the maximum and takes its colour from the sign", () => {
    const ws = [0, 0.1, 0.5, 1, 2, 3];
    const widths = ws.map((w) => edgeStyle(w, 2).width);
    widths.slice(1).forEach((x, i) => expect(x).toBeGreaterThanOrEqual(widths[i]));
    expect(edgeStyle(2, 2).width).toBe(5);
    expect(edgeStyle(3, 2)).toEqual(edgeStyle(2, 2));
    expect(edgeStyle(0, 2).width).toBe(0.5);
    expect(edgeStyle(1, 2).color).toBe(POSITIVE);
    expect(edgeStyle(-1, 2).color).toBe(NEGATIVE);
    expect(edgeStyle(-1, 2).width).toBe(edgeStyle(1, 2).width);
    expect(edgeStyle(-1, 2).opacity).toBeCloseTo(0.55, 12);
    expect(edgeStyle(1, 0)).toEqual({ width: 0.5, color: POSITIVE, opacity: 0.2 });
  });
});

describe("fromCircuit", () => {
  const c = fromCircuit(CIRCUIT);
  it("rows by layer with embeddings below and logits above, heads in index order", () => {
    expect(c.rows).toEqual(["emb", "L0", "L1", "logits"]);
    expect(c.columns).toEqual([]);
    const row = (id: string) => c.nodes.find((n) => n.id === id)!.row;
    expect([row("embed"), row("L0.H2"), row("L1.H3"), row("logits")]).toEqual([0, 1, 2, 3]);
    const lay = layout(c, 48);
    expect(lay.pos.get("L1.H1")!.x).toBeLessThan(lay.pos.get("L1.H3")!.x);
    expect(c.nodes.find((n) => n.id === "L1.H3")!.page).toBe("L1.H3");
    expect(c.nodes.find((n) => n.id === "logits")!.page).toBeNull();
    expect(c.links.filter((l) => l.receiver === "k").map((l) => l.target)).toEqual(["L1.H3", "L1.H1"]);
  });

  it("gives every layer of the model a row when the logits name its depth", () => {
    const deep = fromCircuit({ ...CIRCUIT, nodes: CIRCUIT.nodes.map((n) => (n.node_id === "logits" ? { ...n, layer: 4 } : n)) });
    expect(deep.rows).toEqual(["emb", "L0", "L1", "L2", "L3", "logits"]);
    expect(deep.nodes.find((n) => n.id === "logits")!.row).toBe(5);
    const bare = fromCircuit({ ...CIRCUIT, nodes: [{ node_id: "pos", layer: -1, kind: "pos" }, { node_id: "L0.mlp", layer: 0, kind: "mlp" }, { node_id: "L0.H1", layer: 0, kind: "head" }] });
    expect(bare.nodes.map((n) => [n.id, n.kind, n.row, n.page])).toEqual([
      ["pos", "embedding", 0, null],
      ["L0.mlp", "mlp", 1, null],
      ["L0.H1", "head", 1, "L0.H1"],
    ]);
    const lay = layout(bare);
    expect(lay.pos.get("L0.H1")!.x).toBeLessThan(lay.pos.get("L0.mlp")!.x); // heads, then the MLP
  });

  it("keeps a receiver's links apart when grouping", () => {
    const { graph } = collapseSupernodes(c, [{ name: "ind", members: ["L1.H3", "L1.H1"] }], layout(c).pos);
    const into = graph.links.filter((l) => l.target === SUPER_PREFIX + "ind");
    expect(into.map((l) => [l.source, l.receiver, l.weight])).toEqual([
      ["L0.H2", "k", 2.3],
      ["embed", "v", 0.6],
      ["embed", "q", -0.2],
    ]);
  });
});

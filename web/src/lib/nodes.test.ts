import { describe, expect, it } from "vitest";
import { componentOf, formatNode, hasPage, neighbours, parseNode } from "./nodes";

describe("node ids", () => {
  it("parse and format round-trip every form", () => {
    for (const id of ["L5.H3", "L5.H3@12", "L5.H3@12:4", "L2.N517", "L2.N517@7", "L6.resid_post.F1234", "L6.resid_post.F1@3", "embed", "embed@3", "pos", "pos@0"]) {
      const n = parseNode(id);
      expect(n).not.toBeNull();
      expect(formatNode(n!)).toBe(id);
    }
  });

  it("accepts lower case and canonicalises", () => {
    expect(formatNode(parseNode("l1.h2@3:1")!)).toBe("L1.H2@3:1");
    expect(formatNode(parseNode("L0.hook_resid_post.f3")!)).toBe("L0.resid_post.F3");
  });

  it("rejects what is not a node", () => {
    for (const bad of ["", "L1", "H2", "L1.H", "../../etc/passwd", "L1.H2@", "embed@x"]) expect(parseNode(bad)).toBeNull();
  });

  it("drops positions for the component and knows which nodes have pages", () => {
    expect(componentOf("L1.H2@5:3")).toBe("L1.H2");
    expect(componentOf("L6.resid_post.F9@2")).toBe("L6.resid_post.F9");
    expect(hasPage("L1.H2@5")).toBe(true);
    expect(hasPage("embed@2")).toBe(false);
  });
});

describe("neighbours", () => {
  const info = {
    config: { n_layers: 3, n_heads: 4, d_mlp: 5, attn_only: false } as Record<string, unknown>,
    saes: [
      { name: "a", hook: "blocks.0.hook_resid_post", d_sae: 6, node_prefix: "L0.resid_post" },
      { name: "b", hook: "blocks.2.hook_resid_post", d_sae: 4, node_prefix: "L2.resid_post" },
    ],
  };

  it("walks every head and neuron in order, like an enumeration of the model", () => {
    for (const [kind, size] of [["H", 4], ["N", 5]] as const) {
      const all: string[] = [];
      for (let l = 0; l < 3; l++) for (let i = 0; i < size; i++) all.push(`L${l}.${kind}${i}`);
      all.forEach((id, k) => {
        const nb = neighbours(id, info);
        expect(nb.prev).toBe(all[k - 1] ?? null);
        expect(nb.next).toBe(all[k + 1] ?? null);
        const [l, i] = [Math.floor(k / size), k % size];
        expect(nb.prevLayer).toBe(l > 0 ? `L${l - 1}.${kind}${i}` : null);
        expect(nb.nextLayer).toBe(l < 2 ? `L${l + 1}.${kind}${i}` : null);
      });
    }
  });

  it("moves between SAEs of the same site for latents", () => {
    const nb = neighbours("L0.resid_post.F3", info);
    expect(nb).toEqual({ prev: "L0.resid_post.F2", next: "L0.resid_post.F4", prevLayer: null, nextLayer: "L2.resid_post.F3" });
    expect(neighbours("L0.resid_post.F5", info).nextLayer).toBeNull(); // b has 4 latents
    expect(neighbours("L2.resid_post.F3", info).next).toBeNull();
  });

  it("has no neurons in an attention-only model", () => {
    const nb = neighbours("L0.N1", { ...info, config: { ...info.config, attn_only: true } });
    expect(nb).toEqual({ prev: null, next: null, prevLayer: null, nextLayer: null });
  });
});

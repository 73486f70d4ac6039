import { describe, expect, it } from "vitest";
import { componentOf, formatNode, hasPage, neighbours, nodeProblem, parseNode } from "./nodes";

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

  it("makes up no neighbours for a node the model does not have", () => {
    const none = { prev: null, next: null, prevLayer: null, nextLayer: null };
    // L9.H99 on 3 layers of 4 heads: not ↑ L8.H99 nor ‹ L21.H2 (9*4+99-1 = 134 wrapped)
    for (const id of ["L9.H99", "L1.H99", "L3.H0", "L0.N5", "L1.N99", "L1.resid_post.F0", "L0.resid_post.F6", "L2.resid_post.F4"]) {
      expect(nodeProblem(id, info)).not.toBeNull();
      expect(neighbours(id, info)).toEqual(none);
    }
  });
});

describe("nodeProblem", () => {
  const info = {
    config: { n_layers: 4, n_heads: 8, d_mlp: 1024, attn_only: false, positional: "learned" } as Record<string, unknown>,
    saes: [{ name: "a", hook: "blocks.2.hook_resid_post", d_sae: 2048, node_prefix: "L2.resid_post" }],
  };

  it("says why, in the server's words", () => {
    expect(nodeProblem("L9.H99", info)).toBe("node L9.H99: layer 9 does not exist (0..3)");
    expect(nodeProblem("L1.H8", info)).toBe("node L1.H8: head 8 does not exist (0..7)");
    expect(nodeProblem("L1.N1024", info)).toBe("node L1.N1024: neuron 1024 does not exist (0..1023)");
    expect(nodeProblem("L2.resid_post.F2048", info)).toBe("node L2.resid_post.F2048: latent 2048 does not exist (0..2047)");
    expect(nodeProblem("L1.resid_post.F3", info)).toBe("node L1.resid_post.F3: no SAE is spliced at blocks.1.hook_resid_post (spliced: blocks.2.hook_resid_post)");
    expect(nodeProblem("L0.N1", { ...info, config: { ...info.config, attn_only: true } })).toBe("node L0.N1: the model is attention-only, it has no neurons");
    expect(nodeProblem("pos", { ...info, config: { ...info.config, positional: "rotary" } })).toBe("node pos: the model has no learned position embedding");
    expect(nodeProblem("L1.X", info)).toContain("is not a node id");
  });

  it("accepts every node the model has, with or without positions", () => {
    for (const id of ["L0.H0", "L3.H7", "L3.H7@4:2", "L0.N0", "L3.N1023@1", "L2.resid_post.F0", "L2.resid_post.F2047", "embed", "pos@3"]) expect(nodeProblem(id, info)).toBeNull();
  });
});

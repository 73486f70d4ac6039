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

describe("experts and transcoder features", () => {
  const dict = (kind: "sae" | "transcoder" | "clt", layer: number, d_sae: number, records = true) => {
    const site = kind === "sae" ? "resid_post" : kind;
    const key = kind === "sae" ? `blocks.${layer}.hook_resid_post` : `blocks.${layer}.${kind}`;
    return { name: key, kind, node_prefix: `L${layer}.${site}`, key, d_sae, hook_in: key, hooks_out: [key], spliced: false, records };
  };
  const info = {
    config: { n_layers: 3, n_heads: 2, d_mlp: 8, attn_only: false, num_experts: 4 } as Record<string, unknown>,
    saes: [{ name: "s", hook: "blocks.0.hook_resid_post", d_sae: 5, node_prefix: "L0.resid_post" }],
    dictionaries: [dict("sae", 0, 5), dict("transcoder", 0, 6), dict("transcoder", 2, 3), dict("clt", 1, 7), dict("clt", 2, 7, false)],
    n_experts: 5, // four routed experts and a shared one
  };

  it("parse and format experts and transcoder features", () => {
    for (const id of ["L2.E3", "L2.E3@7", "L3.transcoder.F12", "L3.transcoder.F12@0", "L3.clt.F1", "L0.clt.F9@4"]) {
      const n = parseNode(id);
      expect(n).not.toBeNull();
      expect(formatNode(n!)).toBe(id);
    }
    expect(parseNode("l2.e3@1")).toEqual({ kind: "expert", layer: 2, index: 3, site: null, position: 1, key: null });
    expect(parseNode("L3.Transcoder.f12")).toEqual({ kind: "latent", layer: 3, index: 12, site: "transcoder", position: null, key: null });
    expect(formatNode(parseNode("l2.e3@1")!)).toBe("L2.E3@1");
    for (const bad of ["L2.E", "L2.E3@1:0", "E3", "L2.E-1"]) expect(parseNode(bad)).toBeNull();
    expect(componentOf("L2.E3@7")).toBe("L2.E3");
    expect(componentOf("L3.clt.F1@2")).toBe("L3.clt.F1");
  });

  it("pages: transcoder features with records have one, experts never", () => {
    expect(hasPage("L2.E3")).toBe(false);
    expect(hasPage("L2.E3@1", info)).toBe(false);
    expect(hasPage("L0.transcoder.F1")).toBe(true);
    expect(hasPage("L0.transcoder.F1@3", info)).toBe(true);
    expect(hasPage("L1.clt.F0", info)).toBe(true);
    expect(hasPage("L2.clt.F0", info)).toBe(false); // its records are not there
    expect(hasPage("L1.transcoder.F0", info)).toBe(false); // no such dictionary
    expect(hasPage("L1.H0", info)).toBe(true);
  });

  it("nodeProblem knows the transcoders and the experts, in the server's words", () => {
    for (const id of ["L0.transcoder.F0", "L0.transcoder.F5@2", "L2.transcoder.F2", "L1.clt.F6", "L0.resid_post.F4", "L0.E0", "L2.E4@1"])
      expect(nodeProblem(id, info)).toBeNull();
    expect(nodeProblem("L0.transcoder.F6", info)).toBe("node L0.transcoder.F6: latent 6 does not exist (0..5)");
    expect(nodeProblem("L1.transcoder.F0", info)).toBe(
      "node L1.transcoder.F0: no transcoder is spliced or with records at blocks.1.transcoder (spliced or with records: blocks.0.hook_resid_post, blocks.0.transcoder, blocks.2.transcoder, blocks.1.clt, blocks.2.clt)",
    );
    expect(nodeProblem("L2.E5", info)).toBe("node L2.E5: expert 5 does not exist (0..4)");
    expect(nodeProblem("L3.E0", info)).toBe("node L3.E0: layer 3 does not exist (0..2)");
    expect(nodeProblem("L1.N0", info)).toBe("node L1.N0: the model's MLPs are mixtures of experts; name an expert (L1.E0..E4) instead of a neuron");
    // an older server (no `dictionaries`, no `n_experts`): the spliced SAEs and config.num_experts
    const old = { config: info.config, saes: info.saes };
    expect(nodeProblem("L0.transcoder.F0", old)).toBe("node L0.transcoder.F0: no transcoder is spliced at blocks.0.transcoder (spliced: blocks.0.hook_resid_post)");
    expect(nodeProblem("L2.E3", old)).toBeNull();
    expect(nodeProblem("L2.E4", old)).toBe("node L2.E4: expert 4 does not exist (0..3)");
    const dense = { ...info, n_experts: 0, config: { ...info.config, num_experts: 0 } };
    expect(nodeProblem("L0.E0", dense)).toBe("node L0.E0: the model has no mixture of experts");
    expect(nodeProblem("L0.N7", dense)).toBeNull();
  });

  it("walks every expert in order, like an enumeration of the model", () => {
    const all: string[] = [];
    for (let l = 0; l < 3; l++) for (let e = 0; e < 5; e++) all.push(`L${l}.E${e}`);
    all.forEach((id, k) => {
      const nb = neighbours(`${id}@2`, info);
      expect(nb.prev).toBe(all[k - 1] ?? null);
      expect(nb.next).toBe(all[k + 1] ?? null);
      const [l, e] = [Math.floor(k / 5), k % 5];
      expect(nb.prevLayer).toBe(l > 0 ? `L${l - 1}.E${e}` : null);
      expect(nb.nextLayer).toBe(l < 2 ? `L${l + 1}.E${e}` : null);
    });
  });

  it("moves between the transcoders of one kind, never into another kind's", () => {
    expect(neighbours("L0.transcoder.F2", info)).toEqual({ prev: "L0.transcoder.F1", next: "L0.transcoder.F3", prevLayer: null, nextLayer: "L2.transcoder.F2" });
    expect(neighbours("L0.transcoder.F3", info).nextLayer).toBeNull(); // L2's has 3 features
    expect(neighbours("L2.transcoder.F0", info)).toEqual({ prev: null, next: "L2.transcoder.F1", prevLayer: "L0.transcoder.F0", nextLayer: null });
    expect(neighbours("L1.clt.F6", info)).toEqual({ prev: "L1.clt.F5", next: null, prevLayer: null, nextLayer: "L2.clt.F6" });
    expect(neighbours("L0.resid_post.F1", info)).toEqual({ prev: "L0.resid_post.F0", next: "L0.resid_post.F2", prevLayer: null, nextLayer: null });
    expect(neighbours("L1.transcoder.F0", info)).toEqual({ prev: null, next: null, prevLayer: null, nextLayer: null });
  });
});

import { describe, expect, it } from "vitest";
import {
  ablatedNodes,
  decodeIntervention,
  encodeIntervention,
  inactiveReason,
  parsePositions,
  patchHooks,
  residualHooks,
  steeredNodes,
  suggestedCoefficient,
  toApi,
  toggleAblation,
  toggleSteer,
  type UiIntervention,
} from "./interventions";

const zero = (node: string): UiIntervention => ({ type: "ablate", node, mode: "zero" });

describe("interventions for the API", () => {
  const all: UiIntervention[] = [
    zero("L0.H1"),
    { type: "ablate", node: "L1.N3@4", mode: "mean" },
    { type: "ablate", node: "L0.H2", mode: "resample" },
    { type: "patch", hook: "blocks.1.hook_resid_pre", positions: [2, 5] },
    { type: "steer", latent: "L1.resid_post.F7", coefficient: -3, hook: null, positions: null },
    { type: "steer", latent: "L1.resid_post.F7", coefficient: 2, hook: "blocks.0.hook_resid_post", positions: [4] },
  ];

  it("maps every kind, in order, taking sources from the second prompt", () => {
    expect(toApi(all, "left text", "right text")).toEqual({
      interventions: [
        { type: "ablate", node: "L0.H1" },
        { type: "ablate", node: "L1.N3@4", mode: "mean" },
        { type: "ablate", node: "L0.H2", mode: "resample", source: "right text" },
        { type: "patch", hook: "blocks.1.hook_resid_pre", source: "right text", positions: [2, 5] },
        { type: "steer", latent: "L1.resid_post.F7", coefficient: -3 },
        { type: "steer", latent: "L1.resid_post.F7", coefficient: 2, hook: "blocks.0.hook_resid_post", positions: [4] },
      ],
      reference: ["left text", "right text"],
    });
  });

  it("leaves out what needs a second prompt when there is none", () => {
    const got = toApi(all, "left text", "");
    expect(got?.interventions.map((x) => x.type + ("mode" in x && x.mode ? `:${x.mode}` : ""))).toEqual(["ablate", "ablate:mean", "steer", "steer"]);
    expect(got?.reference).toEqual(["left text"]);
    expect(inactiveReason(all[2], "")).toMatch(/second prompt/);
    expect(inactiveReason(all[3], "")).toMatch(/second prompt/);
    expect(inactiveReason(all[2], "x")).toBeNull();
    expect(toApi([all[3]], "a", "")).toBeNull();
    expect(toApi([zero("L0.H1")], "a", "")).toEqual({ interventions: [{ type: "ablate", node: "L0.H1" }] }); // no reference without mean
  });
});

describe("row actions", () => {
  it("toggle ablations of any mode", () => {
    const ivs = toggleAblation([{ type: "ablate", node: "L0.H1", mode: "mean" }], "L1.H0");
    expect(ablatedNodes(ivs)).toEqual(["L0.H1", "L1.H0"]);
    expect(ablatedNodes(toggleAblation(ivs, "L0.H1"))).toEqual(["L1.H0"]);
  });

  it("steer a latent row at its position, and stop", () => {
    const ivs = toggleSteer([], "L2.resid_post.F7@5", 3.5);
    expect(ivs).toEqual([{ type: "steer", latent: "L2.resid_post.F7", coefficient: 3.5, hook: null, positions: [5] }]);
    expect(steeredNodes(ivs)).toEqual(["L2.resid_post.F7@5"]);
    const both = toggleSteer(ivs, "L2.resid_post.F7", 1);
    expect(both[1]).toEqual({ type: "steer", latent: "L2.resid_post.F7", coefficient: 1, hook: null, positions: null });
    expect(toggleSteer(both, "L2.resid_post.F7@5", 1)).toEqual([both[1]]);
  });

  it("suggests a coefficient as large as the row's activation", () => {
    expect(suggestedCoefficient(-7.2345)).toBe(7.23);
    expect(suggestedCoefficient(0.2)).toBe(1);
    expect(suggestedCoefficient(null)).toBe(1);
  });
});

describe("positions and encoding", () => {
  it("reads position lists", () => {
    expect(parsePositions("")).toBeNull();
    expect(parsePositions(" 3, 4 ,3")).toEqual([3, 4]);
    expect(parsePositions("3,")).toBeUndefined();
    expect(parsePositions("-1")).toBeUndefined();
    expect(parsePositions("1.5")).toBeUndefined();
  });

  it("round-trips one intervention through its parameter", () => {
    const ivs: UiIntervention[] = [
      zero("L1.H0@5:2"),
      { type: "ablate", node: "embed@0", mode: "mean" },
      { type: "patch", hook: "hook_embed", positions: [0, 9] },
      { type: "steer", latent: "L0.resid_pre.F3", coefficient: 0.1 + 0.2, hook: null, positions: [1] },
    ];
    for (const iv of ivs) {
      const [k, v] = encodeIntervention(iv);
      expect(decodeIntervention(k, v)).toEqual(iv);
    }
  });
});

describe("hook lists", () => {
  it("offer the residual stream (steering) and more (patching) at every layer", () => {
    const mlp = { n_layers: 2, attn_only: false, positional: "learned" };
    const res = residualHooks(mlp);
    expect(res).toContain("hook_pos_embed");
    expect(res.filter((h) => h.startsWith("blocks.1."))).toEqual([
      "blocks.1.hook_resid_pre",
      "blocks.1.hook_attn_out",
      "blocks.1.hook_resid_mid",
      "blocks.1.hook_mlp_out",
      "blocks.1.hook_resid_post",
    ]);
    const patch = patchHooks(mlp);
    expect(res.every((h) => patch.includes(h))).toBe(true);
    expect(patch).toContain("blocks.0.mlp.hook_post");
    const attn = { n_layers: 1, attn_only: true, positional: "rotary" };
    expect(patchHooks(attn).some((h) => h.includes("mlp") || h.includes("pos_embed"))).toBe(false);
  });
});

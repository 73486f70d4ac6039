import { describe, expect, it } from "vitest";
import { DEFAULTS, debuggerParams, interventionsOf, parseDebugger, questionOf, toggle, type DebuggerState } from "./debuggerState";
import type { UiIntervention } from "./interventions";

function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

const pick = <T,>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const WORDS = ["", " ", ")", ",", " the", "a|b", "&=?#", "ü\n", "L1.H2@3:1"];

const HOOKS = ["blocks.0.hook_resid_pre", "blocks.1.attn.hook_z", "hook_embed"];
const POSITIONS = [null, [0], [3, 4], [12, 2, 7]];

function randomIntervention(r: () => number): UiIntervention {
  const t = pick(r, ["ablate", "steer", "patch"] as const);
  if (t === "ablate") return { type: "ablate", node: pick(r, ["L0.H1", "L1.N3@4", "embed@0", "L1.H0@5:2", "L2.resid_post.F9"]), mode: pick(r, ["zero", "mean", "resample"] as const) };
  if (t === "patch") return { type: "patch", hook: pick(r, HOOKS), positions: pick(r, POSITIONS) };
  return {
    type: "steer",
    latent: pick(r, ["L2.resid_post.F9", "L0.resid_pre.F0"]),
    coefficient: pick(r, [1, -2.5, 0.125, 1e-7, 40, 3.3333333333333335]),
    hook: pick(r, [null, ...HOOKS]),
    positions: pick(r, POSITIONS),
  };
}

function randomState(r: () => number): DebuggerState {
  const kind = pick(r, ["logit_diff", "logit", "prob", "attention"] as const);
  const prompt2 = pick(r, ["", "x = 1", "print(a)\n"]);
  return {
    prompt: pick(r, ["for i in range(", "a b c", "  ?&=#\n\t"]),
    kind,
    target: kind === "attention" ? [] : [pick(r, WORDS.slice(2))],
    distractor: kind === "logit_diff" ? [pick(r, WORDS.slice(2)), pick(r, WORDS.slice(2))] : [],
    head: kind === "attention" ? pick(r, ["L0.H1", "L3.H7"]) : DEFAULTS.head,
    qpos: kind === "attention" ? pick(r, [null, 4, -1]) : null,
    kpos: kind === "attention" ? pick(r, [0, 2]) : 0,
    prompt2,
    side: prompt2 ? pick(r, ["left", "right", "diff"] as const) : "right",
    topk: pick(r, [1, 10, 50]),
    measure: pick(r, [0, 8, 16]),
    gran: pick(r, ["component", "position", "pair"] as const),
    sort: pick(r, ["activation", "write_norm", "direct_effect", "total_effect", "ablation_effect"] as const),
    dir: pick(r, ["asc", "desc"] as const),
    abs: r() < 0.5,
    kinds: pick(r, [[], ["head"], ["head", "neuron"]]),
    iv: Array.from({ length: pick(r, [0, 0, 1, 2, 5]) }, () => randomIntervention(r)),
    trace: pick(r, [[], ["L1.H0@16:k"], ["L1.H0:k", "L0.H2@9"]]),
    tdir: pick(r, ["upstream", "downstream"] as const),
    color: pick(r, ["embed", "pos_embed", "heads_query", "heads_key", "neurons", "latents"] as const),
  };
}

describe("debugger URL state", () => {
  it("round-trips every field through the query string", () => {
    const r = rng(7);
    for (let i = 0; i < 300; i++) {
      const s = randomState(r);
      const url = "?" + debuggerParams(s).toString();
      expect(parseDebugger(new URLSearchParams(url))).toEqual(s);
    }
  });

  it("writes nothing for defaults and reads defaults from an empty query", () => {
    expect(debuggerParams(DEFAULTS).toString()).toBe("");
    expect(parseDebugger(new URLSearchParams(""))).toEqual(DEFAULTS);
  });

  it("clamps and ignores nonsense instead of failing", () => {
    const s = parseDebugger(new URLSearchParams("k=9999&measure=-3&gran=bogus&sort=x&dir=up&q=nope&kpos=1.5"));
    expect(s.topk).toBe(50);
    expect(s.measure).toBe(0);
    expect(s.gran).toBe(DEFAULTS.gran);
    expect(s.sort).toBe(DEFAULTS.sort);
    expect(s.dir).toBe(DEFAULTS.dir);
    expect(s.kind).toBe(DEFAULTS.kind);
    expect(s.kpos).toBe(DEFAULTS.kpos);
  });

  it("keeps tokens exactly, spaces included", () => {
    const s = parseDebugger(new URLSearchParams(debuggerParams({ ...DEFAULTS, target: [" 10"], distractor: ["\n", " n"] })));
    expect(s.target).toEqual([" 10"]);
    expect(s.distractor).toEqual(["\n", " n"]);
  });

  it("builds the API question and interventions", () => {
    expect(questionOf({ ...DEFAULTS, target: [")"], distractor: [","] })).toEqual({ kind: "logit_diff", target: [")"], distractor: [","] });
    expect(questionOf({ ...DEFAULTS, kind: "prob", target: [" x"] })).toEqual({ kind: "prob", token: " x" });
    expect(questionOf({ ...DEFAULTS, kind: "attention", head: "L2.H5", qpos: null, kpos: 3 })).toEqual({ kind: "attention", layer: 2, head: 5, query_pos: null, key_pos: 3 });
    expect(interventionsOf(DEFAULTS)).toBeNull();
    const zero = (node: string): UiIntervention => ({ type: "ablate", node, mode: "zero" });
    expect(interventionsOf({ ...DEFAULTS, iv: [zero("L0.H1"), zero("pos")] })).toEqual({
      interventions: [{ type: "ablate", node: "L0.H1" }, { type: "ablate", node: "pos" }],
    });
  });

  it("toggles a node in and out of a list", () => {
    expect(toggle([], "a")).toEqual(["a"]);
    expect(toggle(["a", "b"], "a")).toEqual(["b"]);
    expect(toggle(toggle(["x"], "y"), "y")).toEqual(["x"]);
  });
});

describe("interventions in the URL", () => {
  it("keeps their order across kinds, every field exact", () => {
    const iv: UiIntervention[] = [
      { type: "steer", latent: "L2.resid_post.F9", coefficient: -2.5, hook: "blocks.1.hook_resid_pre", positions: [3, 4] },
      { type: "ablate", node: "L1.H0@5:2", mode: "resample" },
      { type: "patch", hook: "blocks.0.attn.hook_z", positions: null },
      { type: "ablate", node: "L0.H1", mode: "zero" },
      { type: "steer", latent: "L2.resid_post.F1", coefficient: 4, hook: null, positions: [7] },
    ];
    const params = debuggerParams({ ...DEFAULTS, prompt: "a b", prompt2: "c d", iv });
    expect([...params.keys()].filter((k) => ["ablate", "steer", "patch"].includes(k))).toEqual(["steer", "ablate", "patch", "ablate", "steer"]);
    expect(params.getAll("ablate")).toEqual(["L1.H0@5:2~resample", "L0.H1"]); // zero stays short (old links work)
    expect(params.getAll("steer")).toEqual(["L2.resid_post.F9~-2.5~blocks.1.hook_resid_pre~3,4", "L2.resid_post.F1~4~~7"]);
    expect(parseDebugger(new URLSearchParams(params.toString())).iv).toEqual(iv);
  });

  it("drops nonsense instead of failing", () => {
    const s = parseDebugger(
      new URLSearchParams("ablate=L0.H1~sideways&ablate=&steer=L0.resid_pre.F1&steer=L0.resid_pre.F1~abc&steer=L0.resid_pre.F1~2~~x&patch=blocks.0.hook_z~-1&patch=a/b&ablate=L0.H2~mean~3"),
    );
    expect(s.iv).toEqual([{ type: "ablate", node: "L0.H1", mode: "zero" }]);
  });
});

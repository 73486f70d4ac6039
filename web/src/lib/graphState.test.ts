// @vitest-environment node
import { describe, expect, it } from "vitest";
import { DEFAULTS, parseDebugger, questionOf } from "./debuggerState";
import { SUPER_PREFIX } from "./graphLayout";
import {
  discoverPageParams,
  editsToApi,
  graphLinkFor,
  graphPageParams,
  graphQuestion,
  graphReady,
  parseDiscoverPage,
  parseEdit,
  parseGraphPage,
  parseView,
  removeEdit,
  setEdit,
  VIEW_DEFAULTS,
  type GraphPageState,
} from "./graphState";

const STATE: GraphPageState = {
  prompt: "def f(x):\n    return x",
  kind: "logit_diff",
  target: [")"],
  distractor: [",", " ="],
  maxFeatureNodes: 300,
  transcoders: "mini-clt",
  edits: [
    { target: "0_12_2", op: "ablate", value: null },
    { target: SUPER_PREFIX + "paren & co", op: "steer", value: -2.5 },
  ],
  view: { nodeThreshold: 0.6, edgeThreshold: 0.25, pinned: ["0_12_2", "1_7_4", "0_-1_2"], supernodes: [{ name: "paren & co", members: ["1_7_4", "0_-1_2"] }] },
};

describe("graph page URL", () => {
  it("round-trips its whole state, with Neuronpedia's qParams names", () => {
    const p = graphPageParams(STATE);
    expect(parseGraphPage(new URLSearchParams(p.toString()))).toEqual(STATE);
    expect(p.get("pinnedIds")).toBe("0_12_2,1_7_4,0_-1_2");
    expect(JSON.parse(p.get("supernodes")!)).toEqual([["paren & co", "1_7_4", "0_-1_2"]]);
  });

  it("omits defaults and reads nonsense as defaults", () => {
    const bare: GraphPageState = { prompt: "a", kind: "logit_diff", target: [], distractor: [], maxFeatureNodes: null, transcoders: null, edits: [], view: VIEW_DEFAULTS };
    expect(graphPageParams(bare).toString()).toBe("prompt=a");
    const odd = parseGraphPage(new URLSearchParams("prompt=a&q=attention&mfn=-3&nt=7&et=-1&supernodes=%5B1%2C%5B%22x%22%5D%5D&edit=steer~n~abc&edit=boost~n"));
    expect(odd.kind).toBe("logit_diff");
    expect(odd.maxFeatureNodes).toBeNull();
    expect(odd.view).toEqual({ ...VIEW_DEFAULTS, nodeThreshold: 1, edgeThreshold: 0 });
    expect(odd.edits).toEqual([]);
    expect(parseView(new URLSearchParams("supernodes=not-json")).supernodes).toEqual([]);
    expect(parseView(new URLSearchParams("nt=0")).nodeThreshold).toBe(0.01);
  });

  it("asks the top logits with no question, or the debugger's questions", () => {
    expect(graphQuestion({ kind: "top", target: ["x"], distractor: [] })).toBeUndefined();
    expect(graphQuestion({ kind: "prob", target: [")"], distractor: [] })).toEqual({ kind: "prob", token: ")" });
    expect(graphQuestion(STATE)).toEqual({ kind: "logit_diff", target: [")"], distractor: [",", " ="] });
    expect(graphReady({ ...STATE, kind: "top", target: [] })).toBe(true);
    expect(graphReady({ ...STATE, distractor: [] })).toBe(false);
    expect(graphReady({ ...STATE, prompt: "" })).toBe(false);
  });

  it("the debugger's graph link carries its prompt and question", () => {
    const d = { ...DEFAULTS, prompt: "x = (1", kind: "logit_diff" as const, target: [")"], distractor: [","], topk: 20 };
    const url = graphLinkFor(d)!;
    expect(url.startsWith("/graph?")).toBe(true);
    const g = parseGraphPage(new URLSearchParams(url.slice("/graph?".length)));
    expect(g.prompt).toBe(d.prompt);
    expect(graphQuestion(g)).toEqual(questionOf(d));
    // the same names as the debugger's URL: the link back reads the same question
    expect(questionOf(parseDebugger(new URLSearchParams(url.slice("/graph?".length))))).toEqual(questionOf(d));
    expect(graphLinkFor({ ...d, kind: "logit", target: ["y"] })).toBe("/graph?prompt=x+%3D+%281&q=logit&target=y");
    expect(graphLinkFor({ ...d, kind: "attention" })).toBeNull();
    expect(graphLinkFor({ ...d, prompt: "" })).toBeNull();
  });
});

describe("graph edits", () => {
  it("parse, replace per target and remove", () => {
    expect(parseEdit("steer~1_7_4~3.5")).toEqual({ target: "1_7_4", op: "steer", value: 3.5 });
    expect(parseEdit("ablate~1_7_4")).toEqual({ target: "1_7_4", op: "ablate", value: null });
    expect(parseEdit("steer~1_7_4~")).toBeNull();
    let e = setEdit([], { target: "a", op: "ablate", value: null });
    e = setEdit(e, { target: "b", op: "ablate", value: null });
    e = setEdit(e, { target: "a", op: "steer", value: 2 });
    expect(e).toEqual([
      { target: "a", op: "steer", value: 2 },
      { target: "b", op: "ablate", value: null },
    ]);
    expect(removeEdit(e, "a")).toEqual([{ target: "b", op: "ablate", value: null }]);
  });

  it("a group's edit applies to each member; a member's own edit wins", () => {
    expect(editsToApi(STATE.edits, STATE.view.supernodes)).toEqual([
      { node_id: "0_12_2", op: "ablate" },
      { node_id: "1_7_4", op: "steer", value: -2.5 },
      { node_id: "0_-1_2", op: "steer", value: -2.5 },
    ]);
    const own = [{ target: "1_7_4", op: "ablate" as const, value: null }, ...STATE.edits];
    expect(editsToApi(own, STATE.view.supernodes).find((x) => x.node_id === "1_7_4")).toEqual({ node_id: "1_7_4", op: "ablate" });
    expect(editsToApi(STATE.edits, [])).toEqual([{ node_id: "0_12_2", op: "ablate" }]); // ungrouped: nothing
  });
});

describe("discover page URL", () => {
  it("round-trips, keeping only the method's own settings", () => {
    const s = { task: "induction", method: "acdc" as const, ablation: "mean-pos" as const, steps: 8, tau: 0.02, topN: 40, view: VIEW_DEFAULTS };
    const p = discoverPageParams(s);
    expect(p.has("steps")).toBe(false);
    expect(parseDiscoverPage(new URLSearchParams(p.toString()))).toEqual({ ...s, steps: null });
    const act = { ...s, method: "eap-ig-act" as const, tau: null };
    expect(discoverPageParams(act).get("steps")).toBe("8");
    expect(parseDiscoverPage(discoverPageParams(act))).toEqual(act);
    const odd = parseDiscoverPage(new URLSearchParams("method=magic&ablation=x&steps=2.5&tau=-1&top_n=0"));
    expect(odd).toEqual({ task: "", method: "eap-ig", ablation: "resample", steps: null, tau: null, topN: null, view: VIEW_DEFAULTS });
  });
});

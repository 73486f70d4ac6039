import { cleanup, render, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { InfoContext } from "../../lib/modelInfo";
import type { ModelInfo, WhyResult } from "../../api/types";
import { DEFAULTS } from "../../lib/debuggerState";
import { useLocation } from "../../lib/router";
import { DebuggerPage } from "../DebuggerPage";
import { AnswerPanel, ValueLine } from "./AnswerPanel";

/** What /api/why answers for a steer that blows the output up: value and candidates are null
 * (JSON has no NaN), the rest as usual. */
function result(value: number | null, logits: (number | null)[]): WhyResult {
  return {
    model: "mini",
    description: "logit(')') - logit(',')",
    value,
    answer_position: 1,
    prompt: { text: "ab", tokens: ["a", "b"], ids: [1, 2] },
    question: { kind: "logit_diff", target: [")"], distractor: [","] },
    targets: [],
    distractors: [],
    candidates: logits.map((l, i) => ({ id: i, token: [")", ","][i], logit: l, prob: l === null ? null : 0.5 })),
    table: { rows: [] },
    tokens: [],
  } as unknown as WhyResult;
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, "", "/");
});

describe("the value line", () => {
  it("shows the change from the value without interventions", () => {
    const { getByTestId } = render(<ValueLine result={result(1.5, [1, 0])} baseline={1.984} />);
    expect(getByTestId("value-change").textContent).toBe("-0.484");
    expect(getByTestId("value-change").getAttribute("data-value")).toBe(String(1.5 - 1.984));
  });

  it("never reads a non-finite value as 0: the change is '–', not -baseline", () => {
    const { getByTestId, container } = render(<ValueLine result={result(null, [null, null])} baseline={1.984} />);
    expect(getByTestId("value-number").textContent).toBe("–");
    expect(getByTestId("value-change").textContent).toBe("–");
    expect(getByTestId("value-change").getAttribute("data-value")).toBe("");
    expect(getByTestId("value-nonfinite").textContent).toContain("not a finite number");
    expect(getByTestId("baseline").textContent).toContain("without interventions 1.984");
    expect(container.textContent).not.toContain("-1.984");
  });

  it("says the candidates are not finite instead of a bare list of dashes", () => {
    const { getByTestId, queryByTestId, rerender } = render(<AnswerPanel result={result(null, [null, null])} baseline={1.984} state={DEFAULTS} update={() => {}} />);
    expect(getByTestId("candidates-nonfinite").textContent).toContain("not finite");
    rerender(<AnswerPanel result={result(1, [2, 1])} baseline={null} state={DEFAULTS} update={() => {}} />);
    expect(queryByTestId("candidates-nonfinite")).toBeNull();
  });
});

const INFO = {
  name: "mini",
  fingerprint: "f",
  n_params: 1,
  config: { n_layers: 4, n_heads: 8, d_mlp: 16, attn_only: false, positional: "learned" },
  has_tokenizer: true,
  node_kinds: ["head"],
  saes: [],
  records: { available: false, coverage: "", n_nodes: 0, note: "" },
  limits: { max_prompt_chars: 100, max_prompt_tokens: 10, max_batch: 8, max_top_k: 50, max_measure: 16, max_interventions: 32, max_trace_hops: 8, max_lens_k: 20, max_watch: 8, max_generate: 32, max_markov_steps: 500 },
  demo: { prompt: "ab", target: ")", distractor: "," },
  markov: false,
  explainers: [],
} as unknown as ModelInfo;

function Page() {
  const loc = useLocation();
  return (
    <InfoContext.Provider value={INFO}>
      <DebuggerPage params={loc.params} />
    </InfoContext.Provider>
  );
}

describe("a rejected request", () => {
  it("shows the server's message, and no value, when /api/why answers 400", async () => {
    const message = "the interventions made the model's output non-finite (inf/NaN); use a smaller steering coefficient or vector";
    const fetch = vi.fn(async (url: string) =>
      url.startsWith("/api/why")
        ? new Response(JSON.stringify({ error: message, status: 400, type: "InputError" }), { status: 400 })
        : new Response(JSON.stringify(result(1.984, [1, 0])), { status: 200 }),
    );
    vi.stubGlobal("fetch", fetch);
    window.history.replaceState(null, "", "/?prompt=ab&target=%29&distractor=%2C&steer=L2.resid_post.F5~1e30");
    const { findByRole, queryByTestId } = render(<Page />);
    const alert = await findByRole("alert");
    expect(alert.textContent).toContain(message);
    await waitFor(() => expect(document.querySelector(".loading")).toBeNull());
    expect(queryByTestId("value")).toBeNull();
    expect(queryByTestId("value-change")).toBeNull();
  });
});

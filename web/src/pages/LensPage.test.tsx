import { cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { InfoContext } from "../lib/modelInfo";
import type { LensRequest, LensView, ModelInfo } from "../api/types";
import { useLocation } from "../lib/router";
import { LensPage } from "./LensPage";

const info = (tuned_lens: string | null): ModelInfo => ({
  name: "mini",
  fingerprint: "f",
  n_params: 1,
  config: { d_vocab: 10, n_layers: 1 },
  has_tokenizer: true,
  node_kinds: [],
  saes: [],
  records: { available: false, coverage: "", n_nodes: 0, note: "" },
  limits: { max_prompt_chars: 100, max_prompt_tokens: 10, max_batch: 8, max_top_k: 50, max_measure: 16, max_interventions: 32, max_trace_hops: 8, max_lens_k: 20, max_watch: 8, max_generate: 32, max_markov_steps: 500 },
  demo: { prompt: "a", target: "b", distractor: "c" },
  markov: false,
  explainers: [],
  tuned_lens,
});

/** What the server would answer: the lens the request asked for (two boundaries, two tokens). */
function view(req: LensRequest): LensView {
  const tuned = req.tuned === true;
  return {
    model: "mini",
    lens: tuned ? "tuned" : "logit",
    tuned_lens: tuned ? "mini-tuned" : null,
    precision: req.precision ?? "fp32",
    tokens: ["a", "b"],
    token_ids: [1, 2],
    n_prompt: 2,
    boundaries: ["embed", "L0.post"],
    top_tokens: [[["x"], ["y"]], [["z"], ["w"]]],
    top_probs: [[[0.5], [0.5]], [[0.5], [0.5]]],
    entropy: [[1, 1], [1, 1]],
    kl: [[1, 1], [0, 0]],
    next_rank: [[tuned ? 2 : 3], [1]],
    next_prob: [[0.1], [0.2]],
    watched: [],
    watch_rank: [[[], []], [[], []]],
    watch_prob: [[[], []], [[], []]],
  };
}

function Harness({ tunedLens }: { tunedLens: string | null }) {
  const loc = useLocation();
  return (
    <InfoContext.Provider value={info(tunedLens)}>
      <LensPage params={loc.params} />
    </InfoContext.Provider>
  );
}

function serve() {
  const fetch = vi.fn(async (_url: string, init: RequestInit) => new Response(JSON.stringify(view(JSON.parse(init.body as string) as LensRequest)), { status: 200 }));
  vi.stubGlobal("fetch", fetch);
  const bodies = () => fetch.mock.calls.map((c) => JSON.parse((c[1] as RequestInit).body as string) as LensRequest);
  return { fetch, bodies };
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  window.history.replaceState(null, "", "/");
});

describe("LensPage tuned lens toggle", () => {
  it("turns the tuned lens on and off through the URL and titles the heatmap", async () => {
    const { bodies } = serve();
    window.history.replaceState(null, "", "/lens?prompt=ab&sublayers=1");
    const { getByTestId } = render(<Harness tunedLens="mini-tuned" />);
    await waitFor(() => expect(getByTestId("lens-title").textContent).toContain("logit lens"));
    expect(bodies()[0]).toMatchObject({ prompt: "ab", tuned: false, sublayers: true });
    const toggle = getByTestId("lens-tuned") as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    expect(toggle.parentElement?.textContent).toContain("tuned lens (mini-tuned)");

    fireEvent.click(toggle);
    await waitFor(() => expect(getByTestId("lens-title").textContent).toContain("tuned lens (mini-tuned)"));
    expect(new URLSearchParams(window.location.search).get("tuned")).toBe("1");
    expect(bodies().at(-1)).toMatchObject({ prompt: "ab", tuned: true, sublayers: false });
    expect((getByTestId("lens-tuned") as HTMLInputElement).checked).toBe(true);
    expect(document.querySelector('[role=grid][aria-label="tuned lens (mini-tuned)"]')).not.toBeNull();

    fireEvent.click(getByTestId("lens-tuned"));
    await waitFor(() => expect(getByTestId("lens-title").textContent).toContain("logit lens"));
    expect(new URLSearchParams(window.location.search).has("tuned")).toBe(false);
    expect(bodies().at(-1)).toMatchObject({ tuned: false, sublayers: true });
  });

  it("opens a shared tuned URL with the tuned lens, and precision from the URL", async () => {
    const { bodies } = serve();
    window.history.replaceState(null, "", "/lens?prompt=ab&tuned=1&precision=bf16");
    const { getByTestId } = render(<Harness tunedLens="mini-tuned" />);
    await waitFor(() => expect(getByTestId("lens-title").textContent).toContain("tuned lens (mini-tuned), bf16"));
    expect(bodies()).toEqual([{ prompt: "ab", watch: [], generate: 0, k: 5, sublayers: false, tuned: true, precision: "bf16" }]);
  });

  it("offers no toggle, and asks for the logit lens, on a server without a tuned lens", async () => {
    const { bodies } = serve();
    window.history.replaceState(null, "", "/lens?prompt=ab&tuned=1");
    const { getByTestId, queryByTestId } = render(<Harness tunedLens={null} />);
    await waitFor(() => expect(getByTestId("lens-title").textContent).toContain("logit lens"));
    expect(queryByTestId("lens-tuned")).toBeNull();
    expect(bodies()[0].tuned).toBe(false);
  });
});

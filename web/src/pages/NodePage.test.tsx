import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { InfoContext } from "../lib/modelInfo";
import type { ModelInfo } from "../api/types";
import { NodePage } from "./NodePage";

// mini's shape: 4 layers of 8 heads and 1024 neurons, one SAE at L2.resid_post
const INFO = {
  name: "mini",
  fingerprint: "f",
  n_params: 1,
  config: { n_layers: 4, n_heads: 8, d_mlp: 1024, attn_only: false, positional: "learned" },
  has_tokenizer: true,
  node_kinds: ["head", "neuron", "latent"],
  saes: [{ name: "s", hook: "blocks.2.hook_resid_post", d_sae: 2048, node_prefix: "L2.resid_post" }],
  records: { available: false, coverage: "", n_nodes: 0, note: "no records" },
  limits: {},
  demo: { prompt: "a", target: "b", distractor: "c" },
  markov: false,
  explainers: [],
} as unknown as ModelInfo;

function page(id: string) {
  return render(
    <InfoContext.Provider value={INFO}>
      <NodePage id={id} params={new URLSearchParams()} />
    </InfoContext.Provider>,
  );
}

const navLinks = (c: HTMLElement) => [...c.querySelectorAll("nav.node-nav a")].map((a) => [a.getAttribute("href"), a.textContent]);

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("NodePage", () => {
  it("shows why a node does not exist, and no made-up neighbours or text form", () => {
    const fetch = vi.fn();
    vi.stubGlobal("fetch", fetch);
    const { container, getByRole, queryByTestId } = page("L9.H99");
    expect(getByRole("alert").textContent).toContain("layer 9 does not exist (0..3)");
    expect(navLinks(container).map(([href]) => href)).toEqual(["/"]); // only ← debugger
    expect(container.textContent).not.toContain("L8.H99");
    expect(container.textContent).not.toContain("L21.H2");
    expect(queryByTestId("my-text")).toBeNull();
    expect(queryByTestId("no-records")).toBeNull();
    expect(fetch).not.toHaveBeenCalled();
  });

  it("labels the layer links with the layer they go to", () => {
    vi.stubGlobal("fetch", vi.fn());
    const { container, getByTestId } = page("L1.N42");
    expect(navLinks(container)).toEqual([
      ["/", "← debugger"],
      ["/node/L0.N42", "← L0.N42 (layer 0)"],
      ["/node/L1.N41", "‹ L1.N41"],
      ["/node/L1.N43", "L1.N43 ›"],
      ["/node/L2.N42", "L2.N42 (layer 2) →"],
    ]);
    expect(container.querySelector("[data-nav=earlier-layer]")?.getAttribute("title")).toContain("earlier layer");
    expect(container.querySelector("[data-nav=later-layer]")?.getAttribute("title")).toContain("later layer");
    expect(getByTestId("my-text")).toBeTruthy();
  });

  it("has no link past the first or last layer", () => {
    vi.stubGlobal("fetch", vi.fn());
    const first = page("L0.H0");
    expect(navLinks(first.container).map(([h]) => h)).toEqual(["/", "/node/L0.H1", "/node/L1.H0"]);
    cleanup();
    const last = page("L3.H7");
    expect(navLinks(last.container).map(([h]) => h)).toEqual(["/", "/node/L2.H7", "/node/L3.H6"]);
  });
});

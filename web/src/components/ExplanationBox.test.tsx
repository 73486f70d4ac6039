import { cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Explanation, ExplainerInfo } from "../api/types";
import { ExplanationBox, explainerName, mergeExplanations } from "./ExplanationBox";

const EXPLAINERS: ExplainerInfo[] = [
  { name: "offline", label: "token statistics (no language model)", model: null },
  { name: "llm", label: "written by fake-model (LLM) from top examples", model: "fake-model" },
];

const row = (over: Partial<Explanation>): Explanation => ({
  node_id: "L0.H1",
  explainer: "offline",
  text: "the token x",
  status: "ok",
  score: 0.5,
  control: 0.1,
  n_tokens: 40,
  error: "",
  model: "",
  ...over,
});

function Harness({ stored, explainers }: { stored: Explanation[]; explainers: ExplainerInfo[] }) {
  const [choice, setChoice] = useState<ExplainerInfo["name"]>("offline");
  return <ExplanationBox id="L0.H1" stored={stored} explainers={explainers} choice={choice} onChoice={setChoice} />;
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("ExplanationBox", () => {
  it("names explainers as readers know them", () => {
    expect(explainerName(EXPLAINERS[0])).toBe("token statistics");
    expect(explainerName(EXPLAINERS[1])).toBe("LLM fake-model");
    const a = row({}), b = row({ explainer: "llm", text: "new" }), c = row({ explainer: "llm", text: "old" });
    expect(mergeExplanations([a, c], [b])).toEqual([b, a]);
  });

  it("asks the chosen LLM explainer and shows its score and shuffled control", async () => {
    const made = row({ explainer: "llm", model: "fake-model", text: "the token y (and nothing else).", score: 0.875, control: 0.25, n_tokens: 64 });
    const fetch = vi.fn(async () => new Response(JSON.stringify(made), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    const { getByLabelText, getByText, container } = render(<Harness stored={[row({})]} explainers={EXPLAINERS} />);
    expect(getByText("explain and score again")).toBeTruthy(); // offline has one: refresh
    fireEvent.click(getByLabelText("LLM fake-model"));
    fireEvent.click(getByText("explain and score")); // none from the LLM yet
    await waitFor(() => expect(container.querySelector("[data-explainer=llm]")).not.toBeNull());
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/nodes/L0.H1/explain");
    expect(JSON.parse(init.body as string)).toEqual({ explainer: "llm", refresh: false });
    const item = container.querySelector("[data-explainer=llm]")!;
    expect(item.textContent).toContain("the token y (and nothing else).");
    expect(item.querySelector("[data-testid=score]")?.textContent).toBe("0.875");
    expect(item.querySelector("[data-testid=control]")?.textContent).toBe("0.25");
    expect(item.textContent).toContain("LLM fake-model");
    expect(container.querySelectorAll(".explanation-item")).toHaveLength(2); // the offline one stays
  });

  it("shows a failed explanation's reason and offers to try again", async () => {
    const failed = row({ explainer: "llm", model: "fake-model", text: "", status: "failed", score: null, control: null, n_tokens: 0, error: "explaining: cannot connect" });
    const fetch = vi.fn(async () => new Response(JSON.stringify(failed), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    const { getByLabelText, getByText, container } = render(<Harness stored={[]} explainers={EXPLAINERS} />);
    fireEvent.click(getByLabelText("LLM fake-model"));
    fireEvent.click(getByText("explain and score"));
    await waitFor(() => getByText("try again"));
    expect(container.querySelector("[data-explainer=llm]")?.textContent).toContain("failed: explaining: cannot connect");
    fireEvent.click(getByText("try again"));
    await waitFor(() => expect(fetch).toHaveBeenCalledTimes(2));
    expect(JSON.parse((fetch.mock.calls[1] as unknown as [string, RequestInit])[1].body as string)).toEqual({ explainer: "llm", refresh: true });
  });

  it("offers no choice when the server has only the offline explainer", () => {
    const { container, getByText } = render(<Harness stored={[]} explainers={[EXPLAINERS[0]]} />);
    expect(container.querySelector("input[type=radio]")).toBeNull();
    getByText("token statistics (no language model)");
  });
});

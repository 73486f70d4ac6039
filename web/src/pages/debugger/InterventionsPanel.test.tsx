import { cleanup, fireEvent, render, within } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { debuggerParams, DEFAULTS, parseDebugger } from "../../lib/debuggerState";
import type { UiIntervention } from "../../lib/interventions";
import { InterventionsPanel } from "./InterventionsPanel";

const RESID = ["hook_embed", "blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"];
const PATCH = [...RESID, "blocks.0.attn.hook_z"];

/** The panel over a URL: every change goes through the query string and back, as on the page. */
function Harness({ start, prompt2, seen }: { start: UiIntervention[]; prompt2: string; seen: string[] }) {
  const [url, setUrl] = useState(debuggerParams({ ...DEFAULTS, prompt: "a", prompt2, iv: start }).toString());
  const state = parseDebugger(new URLSearchParams(url));
  return (
    <InterventionsPanel
      items={state.iv}
      prompt2={state.prompt2}
      residualHooks={RESID}
      patchHooks={PATCH}
      max={4}
      onChange={(iv) => {
        const next = debuggerParams({ ...state, iv }).toString();
        seen.push(next);
        setUrl(next);
      }}
    />
  );
}

const STEER: UiIntervention = { type: "steer", latent: "L1.resid_post.F3", coefficient: 2, hook: null, positions: null };

function setup(start: UiIntervention[], prompt2 = "") {
  const seen: string[] = [];
  const r = render(<Harness start={start} prompt2={prompt2} seen={seen} />);
  const last = () => parseDebugger(new URLSearchParams(seen[seen.length - 1])).iv;
  return { ...r, seen, last };
}

afterEach(cleanup);

describe("InterventionsPanel", () => {
  it("edits a steer's coefficient, hook and positions from the keyboard", () => {
    const { getByLabelText, last, seen } = setup([STEER]);
    const coef = getByLabelText("steering coefficient of intervention 1") as HTMLInputElement;
    fireEvent.change(coef, { target: { value: "-4.5" } });
    expect(seen).toHaveLength(0); // nothing applies before Enter
    fireEvent.keyDown(coef, { key: "Enter" });
    expect(last()).toEqual([{ ...STEER, coefficient: -4.5 }]);
    fireEvent.change(getByLabelText("hook of intervention 1"), { target: { value: "blocks.1.hook_resid_pre" } });
    const pos = getByLabelText("positions of intervention 1") as HTMLInputElement;
    fireEvent.change(pos, { target: { value: "2,x" } });
    expect(pos.getAttribute("aria-invalid")).toBe("true");
    fireEvent.keyDown(pos, { key: "Enter" });
    expect(seen).toHaveLength(2); // an invalid list is not applied
    fireEvent.change(pos, { target: { value: "2, 3" } });
    fireEvent.blur(pos);
    expect(last()).toEqual([{ ...STEER, coefficient: -4.5, hook: "blocks.1.hook_resid_pre", positions: [2, 3] }]);
  });

  it("switches an ablation's mode; resampling needs the second prompt", () => {
    const one: UiIntervention = { type: "ablate", node: "L0.H1", mode: "zero" };
    const { getByLabelText, last, unmount } = setup([one]);
    const mode = getByLabelText("ablation mode of intervention 1") as HTMLSelectElement;
    expect((within(mode).getByText(/resample/) as HTMLOptionElement).disabled).toBe(true);
    fireEvent.change(mode, { target: { value: "mean" } });
    expect(last()).toEqual([{ ...one, mode: "mean" }]);
    unmount();
    const two = setup([one], "other prompt");
    const mode2 = two.getByLabelText("ablation mode of intervention 1") as HTMLSelectElement;
    expect((within(mode2).getByText(/resample/) as HTMLOptionElement).disabled).toBe(false);
    fireEvent.change(mode2, { target: { value: "resample" } });
    expect(two.last()).toEqual([{ ...one, mode: "resample" }]);
  });

  it("adds a patch from the second prompt, and shows it inactive without one", () => {
    const { getByLabelText, getByText, container, last, unmount } = setup([], "other prompt");
    fireEvent.change(getByLabelText("hook to patch"), { target: { value: "blocks.0.attn.hook_z" } });
    fireEvent.change(getByLabelText("positions to patch"), { target: { value: "1,4" } });
    fireEvent.click(getByText("add patch"));
    expect(last()).toEqual([{ type: "patch", hook: "blocks.0.attn.hook_z", positions: [1, 4] }]);
    expect(container.querySelector("li[data-type=patch]")?.className).not.toContain("inactive");
    unmount();
    const none = setup([{ type: "patch", hook: "blocks.0.attn.hook_z", positions: null }]);
    expect(none.container.querySelector("li[data-type=patch]")?.textContent).toMatch(/inactive: needs a second prompt/);
    expect(none.queryByText("add patch")).toBeNull();
  });

  it("adds by node id (Enter ablates), removes one, and respects the limit", () => {
    const { getByLabelText, getByText, last, container } = setup([STEER]);
    const box = getByLabelText("node to ablate or steer") as HTMLInputElement;
    fireEvent.change(box, { target: { value: "nonsense" } });
    expect(box.getAttribute("aria-invalid")).toBe("true");
    expect((getByText("ablate", { selector: "button" }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(box, { target: { value: "L0.H1@3" } });
    fireEvent.keyDown(box, { key: "Enter" });
    expect(last()).toEqual([STEER, { type: "ablate", node: "L0.H1@3", mode: "zero" }]);
    expect((getByText("steer", { selector: "button" }) as HTMLButtonElement).disabled).toBe(true); // not a latent
    fireEvent.change(box, { target: { value: "L1.resid_post.F9@2" } });
    fireEvent.click(getByText("steer", { selector: "button" }));
    expect(last()[2]).toEqual({ type: "steer", latent: "L1.resid_post.F9", coefficient: 1, hook: null, positions: [2] });
    // the new steer's coefficient has the focus: the next thing to type
    expect(document.activeElement).toBe(getByLabelText("steering coefficient of intervention 3"));
    fireEvent.click(getByLabelText("remove intervention 1 (steer)"));
    expect(last().map((x) => x.type)).toEqual(["ablate", "steer"]);
    expect(container.querySelectorAll("li")).toHaveLength(2);
    fireEvent.click(getByText("remove all"));
    expect(last()).toEqual([]);
  });

  it("stops adding at the server's limit", () => {
    const four = Array.from({ length: 4 }, (_, i): UiIntervention => ({ type: "ablate", node: `L0.H${i}`, mode: "zero" }));
    const { getByLabelText, getByText } = setup(four);
    fireEvent.change(getByLabelText("node to ablate or steer"), { target: { value: "L1.H1" } });
    expect((getByText("ablate", { selector: "button" }) as HTMLButtonElement).disabled).toBe(true);
    getByText("at most 4 interventions");
  });
});

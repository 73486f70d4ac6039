import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { NodeSummary } from "../../api/types";
import { SummaryCell } from "./NodeTablePanel";

afterEach(cleanup);

describe("SummaryCell", () => {
  it("shortens whitespace-heavy top tokens to one line, with every token in full in its tooltip", () => {
    // L2.resid_post.F402 on mini: newline + dozens of spaces, three times
    const boosts = ["\n" + " ".repeat(36), "))", "\n" + " ".repeat(33), "\n" + " ".repeat(44)];
    const s = { node: "L2.resid_post.F402", boosts, top_tokens: [], explanation: null } as unknown as NodeSummary;
    const { container } = render(<SummaryCell s={s} />);
    const line = container.querySelector(".top-tokens") as HTMLElement;
    expect(line.textContent).toBe("↑ ↵·×36 )) ↵·×33 ↵·×44");
    expect(line.textContent!.length).toBeLessThan(30);
    expect(line.getAttribute("title")).toContain("↵" + "·".repeat(44));
    expect(line.getAttribute("title")).toContain("))");
  });
});

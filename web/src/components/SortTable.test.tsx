import { cleanup, fireEvent, render } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type { Dir } from "../lib/sort";
import { nextSort, SortTable, type Col } from "./SortTable";

interface Row {
  node: string;
  a: number | null;
  b: number;
}

const ROWS: Row[] = [
  { node: "L0.H1", a: 1.5, b: -3 },
  { node: "L1.H0", a: -4, b: 2 },
  { node: "pos", a: null, b: 0.5 },
  { node: "embed", a: 2, b: 1 },
];

const COLS: Col<Row>[] = [
  { key: "node", label: "node", render: (r) => r.node },
  { key: "a", label: "a", value: (r) => r.a },
  { key: "b", label: "b", value: (r) => r.b },
];

function Harness({ abs }: { abs: boolean }) {
  const [sort, setSort] = useState("a");
  const [dir, setDir] = useState<Dir>("desc");
  return <SortTable rows={ROWS} cols={COLS} rowKey={(r) => r.node} sort={sort} dir={dir} abs={abs} onSort={(k, d) => { setSort(k); setDir(d); }} testid="t" />;
}

/** A table whose parent keeps the magnitude switch, as the debugger's tables do. */
function MagnitudeHarness() {
  const [s, setS] = useState<{ sort: string; dir: Dir; abs: boolean }>({ sort: "a", dir: "desc", abs: true });
  return <SortTable rows={ROWS} cols={COLS} rowKey={(r) => r.node} sort={s.sort} dir={s.dir} abs={s.abs} onSort={(sort, dir, abs) => setS({ sort, dir, abs })} testid="t" />;
}

const order = (c: HTMLElement) => [...c.querySelectorAll("tbody tr")].map((tr) => tr.getAttribute("data-node"));

afterEach(cleanup);

describe("SortTable", () => {
  it("orders rows by the clicked column, toggling direction, nulls last", () => {
    const { container, getByText } = render(<Harness abs={false} />);
    expect(order(container)).toEqual(["embed", "L0.H1", "L1.H0", "pos"]);
    fireEvent.click(getByText("a", { selector: "button" }));
    expect(order(container)).toEqual(["L1.H0", "L0.H1", "embed", "pos"]);
    fireEvent.click(getByText("b", { selector: "button" }));
    expect(order(container)).toEqual(["L1.H0", "embed", "pos", "L0.H1"]);
    expect(container.querySelector("th[aria-sort=descending]")?.textContent).toContain("b");
  });

  it("ranks by magnitude when asked", () => {
    const { container } = render(<Harness abs />);
    expect(order(container)).toEqual(["L1.H0", "embed", "L0.H1", "pos"]);
  });

  it("starts effect columns at the biggest magnitudes, then signed largest first, then smallest first", () => {
    const { container, getByText } = render(<MagnitudeHarness />);
    const arrow = (col: string) => container.querySelector(`button.sort[data-column=${col}] .arrow`)?.textContent?.trim();
    // a: 1.5, -4, null, 2 -> |a| 4, 2, 1.5 (the biggest effect of either sign first)
    expect(order(container)).toEqual(["L1.H0", "embed", "L0.H1", "pos"]);
    expect(arrow("a")).toBe("|▼|");
    expect(container.querySelector("button.sort[data-column=a]")?.getAttribute("title")).toContain("Sorted by magnitude, largest first");
    // the first click on the sorted header must not show the smallest effects first
    fireEvent.click(getByText("a", { selector: "button", exact: false }));
    expect(order(container)).toEqual(["embed", "L0.H1", "L1.H0", "pos"]);
    expect(arrow("a")).toBe("▼");
    fireEvent.click(getByText("a", { selector: "button", exact: false }));
    expect(order(container)).toEqual(["L1.H0", "L0.H1", "embed", "pos"]);
    expect(arrow("a")).toBe("▲");
    fireEvent.click(getByText("a", { selector: "button", exact: false }));
    expect(order(container)).toEqual(["L1.H0", "embed", "L0.H1", "pos"]);
    expect(arrow("a")).toBe("|▼|");
    // another column starts at its biggest magnitudes too: b: -3, 2, 0.5, 1
    fireEvent.click(getByText("b", { selector: "button", exact: false }));
    expect(order(container)).toEqual(["L0.H1", "L1.H0", "embed", "pos"]);
    expect(arrow("b")).toBe("|▼|");
    expect(arrow("a")).toBe("↕");
  });

  it("cycles magnitude and value only in tables that rank by magnitude", () => {
    expect(nextSort("a", { sort: "b", dir: "asc", abs: false })).toEqual({ sort: "a", dir: "desc", abs: true });
    expect(nextSort("a", { sort: "a", dir: "asc", abs: true })).toEqual({ sort: "a", dir: "desc", abs: true });
    expect(nextSort("a", { sort: "a", dir: "desc" })).toEqual({ sort: "a", dir: "asc", abs: false });
    expect(nextSort("a", { sort: "a", dir: "asc" })).toEqual({ sort: "a", dir: "desc", abs: false });
    expect(nextSort("b", { sort: "a", dir: "asc" })).toEqual({ sort: "b", dir: "desc", abs: false });
  });

  it("prints every number and shades by sign", () => {
    const { container } = render(<Harness abs={false} />);
    const cell = container.querySelector("tr[data-node='L1.H0'] td[data-column=a]") as HTMLElement;
    expect(cell.textContent).toBe("-4");
    expect(cell.style.background).toContain("220, 38, 38");
    expect((container.querySelector("tr[data-node=pos] td[data-column=a]") as HTMLElement).textContent).toBe("–");
  });
});

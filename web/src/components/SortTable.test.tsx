import { cleanup, fireEvent, render } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type { Dir } from "../lib/sort";
import { SortTable, type Col } from "./SortTable";

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

  it("prints every number and shades by sign", () => {
    const { container } = render(<Harness abs={false} />);
    const cell = container.querySelector("tr[data-node='L1.H0'] td[data-column=a]") as HTMLElement;
    expect(cell.textContent).toBe("-4");
    expect(cell.style.background).toContain("220, 38, 38");
    expect((container.querySelector("tr[data-node=pos] td[data-column=a]") as HTMLElement).textContent).toBe("–");
  });
});

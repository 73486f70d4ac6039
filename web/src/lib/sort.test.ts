import { describe, expect, it } from "vitest";
import { sortRows } from "./sort";

// Reference: selection sort written independently (nulls last, ties by original order).
function reference(values: (number | null)[], dir: "asc" | "desc", abs: boolean): number[] {
  const idx = values.map((_, i) => i);
  const key = (i: number) => {
    const v = values[i];
    return v === null ? null : abs ? Math.abs(v) : v;
  };
  const out: number[] = [];
  const left = [...idx];
  while (left.length) {
    let best = 0;
    for (let j = 1; j < left.length; j++) {
      const a = key(left[best]);
      const b = key(left[j]);
      if (a === null && b !== null) best = j;
      else if (a !== null && b !== null && (dir === "desc" ? b > a : b < a)) best = j;
    }
    out.push(left.splice(best, 1)[0]);
  }
  return out;
}

describe("sortRows", () => {
  it("matches a brute-force sort for random rows, both directions, by value and magnitude", () => {
    let s = 3;
    const rand = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(rand() * 12);
      const values = Array.from({ length: n }, () => (rand() < 0.15 ? null : Math.round((rand() - 0.5) * 20)));
      const rows = values.map((v, i) => ({ i, v }));
      for (const dir of ["asc", "desc"] as const)
        for (const abs of [false, true]) {
          const got = sortRows(rows, (r) => r.v, dir, abs).map((r) => r.i);
          expect(got).toEqual(reference(values, dir, abs));
        }
    }
  });

  it("does not modify its input", () => {
    const rows = [{ v: 2 }, { v: 1 }];
    sortRows(rows, (r) => r.v, "asc");
    expect(rows).toEqual([{ v: 2 }, { v: 1 }]);
  });
});

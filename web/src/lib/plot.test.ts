// @vitest-environment node
import { describe, expect, it } from "vitest";
import { linear, polyline, ticks } from "./plot";

describe("plot maths", () => {
  it("maps a domain linearly onto a range, flipped ranges included", () => {
    const s = linear(0, 10, 100, 0);
    expect([s(0), s(5), s(10), s(12)]).toEqual([100, 50, 0, -20]);
    expect(linear(3, 3, 0, 10)(7)).toBe(5);
  });

  it("ticks are round, evenly spaced and inside the domain", () => {
    expect(ticks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(0, 37, 5)).toEqual([0, 10, 20, 30]);
    expect(ticks(-3, 3, 3)).toEqual([-2, 0, 2]);
    for (const [lo, hi] of [
      [0.013, 0.87],
      [2, 1234],
      [-50, -2],
    ]) {
      const t = ticks(lo, hi, 5);
      expect(t.length).toBeGreaterThanOrEqual(2);
      t.forEach((x) => expect(x >= lo - 1e-12 && x <= hi + 1e-12).toBe(true));
      const step = t[1] - t[0];
      const mant = step / 10 ** Math.floor(Math.log10(step));
      expect([1, 2, 5].some((m) => Math.abs(mant - m) < 1e-9)).toBe(true);
    }
    expect(ticks(4, 4)).toEqual([4]);
    expect(ticks(NaN, 1)).toEqual([]);
  });

  it("draws the points in order", () => {
    expect(polyline([[0, 0], [1, 1]], (x) => 10 * x, (y) => 100 - 10 * y)).toBe("M0.0,100.0 L10.0,90.0");
  });
});

import { describe, expect, it } from "vitest";
import { diverging, maxAbs, rankColor, sequential } from "./color";
import { change, compactToken, fmt, isNum, pct, showToken } from "./format";
import { inkFor } from "../components/Heatmap";

describe("format", () => {
  it("prints three significant digits without trailing zeros", () => {
    expect(fmt(1.41196)).toBe("1.41");
    expect(fmt(-0.5)).toBe("-0.5");
    expect(fmt(100)).toBe("100");
    expect(fmt(0)).toBe("0");
    expect(fmt(null)).toBe("–");
    expect(fmt(123456)).toBe("1.2e+5");
    expect(pct(0.1234)).toBe("12.3%");
  });

  it("makes whitespace in tokens visible", () => {
    expect(showToken(" print")).toBe("·print");
    expect(showToken("\n    ")).toBe("↵····");
    expect(showToken("\t")).toBe("→");
  });
});

describe("values that are not numbers", () => {
  it("never enter a difference: null, NaN and infinities give null, not a change of -baseline", () => {
    expect(change(3, 1)).toBe(2);
    expect(change(-0.5, 1.5)).toBe(-2);
    for (const bad of [null, undefined, NaN, Infinity, -Infinity]) {
      expect(change(bad, 1.984)).toBeNull();
      expect(change(1.984, bad)).toBeNull();
      expect(isNum(bad)).toBe(false);
    }
    expect(isNum(0)).toBe(true);
    expect(fmt(change(null, 1.984), 4)).toBe("–");
    expect(pct(null)).toBe("–");
    expect(pct(NaN)).toBe("–");
  });
});

describe("compact tokens", () => {
  it("shorten long runs of whitespace marks and keep short ones", () => {
    expect(compactToken("\n" + " ".repeat(36))).toBe("↵·×36");
    expect(compactToken("\n    ")).toBe("↵····");
    expect(compactToken("\t\t\t\t\tx")).toBe("→×5x");
    expect(compactToken(" print")).toBe("·print");
    expect(compactToken(null)).toBe("");
  });
});

describe("colours", () => {
  it("encode sign as hue and magnitude as opacity", () => {
    expect(diverging(1, 2)).toBe("rgba(37, 99, 235, 0.425)");
    expect(diverging(-2, 2)).toBe("rgba(220, 38, 38, 0.850)");
    expect(diverging(5, 2)).toBe(diverging(2, 2)); // saturates
    expect(diverging(null, 1)).toBe("transparent");
    expect(sequential(0, 1)).toBe("rgba(234, 88, 12, 0.000)");
    expect(maxAbs([1, -3, null, NaN, 2])).toBe(3);
  });

  it("fades ranks on a log scale and picks readable ink", () => {
    expect(rankColor(1, 4096)).toBe("rgba(22, 101, 52, 0.900)");
    expect(rankColor(4096, 4096)).toBe("rgba(22, 101, 52, 0.000)");
    expect(inkFor("rgba(1, 2, 3, 0.9)")).toBe("#fff");
    expect(inkFor("rgba(1, 2, 3, 0.2)")).toBeUndefined();
    expect(inkFor("#eee")).toBeUndefined();
  });
});

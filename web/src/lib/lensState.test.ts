import { describe, expect, it } from "vitest";
import { lensName, lensRequest, parseLens, patchParams } from "./lensState";

const LIMITS = { max_generate: 32, max_lens_k: 20 } as Parameters<typeof parseLens>[1]["limits"];
const WITH = { limits: LIMITS, tuned_lens: "mini-tuned" };
const WITHOUT = { limits: LIMITS, tuned_lens: null };
const q = (s: string) => new URLSearchParams(s);

describe("lens URL state", () => {
  it("reads tuned=1 only on a server with a tuned lens", () => {
    expect(parseLens(q("tuned=1"), WITH).tuned).toBe(true);
    expect(parseLens(q("tuned=1"), WITHOUT).tuned).toBe(false);
    expect(parseLens(q(""), WITH).tuned).toBe(false);
    expect(parseLens(q("tuned=yes"), WITH).tuned).toBe(false);
  });

  it("drops sublayers under the tuned lens (it has translators at block boundaries only)", () => {
    expect(parseLens(q("sublayers=1"), WITH).sublayers).toBe(true);
    expect(parseLens(q("sublayers=1&tuned=1"), WITH).sublayers).toBe(false);
    expect(parseLens(q("sublayers=1&tuned=1"), WITHOUT).sublayers).toBe(true);
  });

  it("clamps numbers to the server's limits and keeps unknown values out", () => {
    const s = parseLens(q("generate=99&k=0&metric=nope&precision=fp16&watch=&watch=%20is"), WITH);
    expect([s.generate, s.k, s.metric, s.precision, s.watch]).toEqual([32, 5, "rank", "fp32", [" is"]]);
    expect(parseLens(q("k=50&precision=bf16&metric=kl"), WITH)).toMatchObject({ k: 20, precision: "bf16", metric: "kl" });
  });

  it("round-trips through the URL and makes the request", () => {
    const s = parseLens(q("prompt=a%26b&watch=x&watch=y|z&generate=3&tuned=1&precision=bf16"), WITH);
    const again = parseLens(patchParams(q(""), { prompt: s.prompt, watch: s.watch, generate: String(s.generate), tuned: s.tuned ? "1" : "", precision: s.precision }), WITH);
    expect(again).toEqual(s);
    expect(lensRequest(s)).toEqual({ prompt: "a&b", watch: ["x", "y|z"], generate: 3, k: 5, sublayers: false, tuned: true, precision: "bf16" });
    const off = patchParams(q("prompt=p&tuned=1&watch=a"), { tuned: "" });
    expect(off.toString()).toBe("prompt=p&watch=a");
  });

  it("names the lens a result is", () => {
    expect(lensName({ lens: "logit", tuned_lens: null, precision: "fp32" })).toBe("logit lens");
    expect(lensName({ lens: "tuned", tuned_lens: "mini-tuned", precision: "fp32" })).toBe("tuned lens (mini-tuned)");
    expect(lensName({ lens: "tuned", tuned_lens: "mini-tuned", precision: "bf16" })).toBe("tuned lens (mini-tuned), bf16");
  });
});

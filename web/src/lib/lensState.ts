// The lens page's whole state lives in its URL: parse it (clamped to the server's limits, the
// tuned lens only when the server has one), turn it into a request, write changes back.
import type { LensRequest, LensView, ModelInfo } from "../api/types";

export type Metric = "rank" | "prob" | "entropy" | "kl";
export type Precision = "fp32" | "bf16";
export const METRICS: readonly Metric[] = ["rank", "prob", "entropy", "kl"];
export const DEFAULT_PROMPT = "for i in range(";

export interface LensSettings {
  prompt: string;
  watch: string[];
  generate: number;
  k: number;
  sublayers: boolean;
  metric: Metric;
  tuned: boolean;
  precision: Precision;
}

type Info = Pick<ModelInfo, "limits" | "tuned_lens">;

/** The settings a URL asks for. `tuned=1` counts only on a server with a tuned lens, and a tuned
 * lens has translators at block boundaries only, so it turns the sublayer rows off. */
export function parseLens(params: URLSearchParams, info: Info): LensSettings {
  const int = (key: string, dflt: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.trunc(Number(params.get(key) ?? dflt)) || dflt));
  const m = params.get("metric") ?? "";
  const tuned = params.get("tuned") === "1" && !!info.tuned_lens;
  return {
    prompt: params.get("prompt") ?? DEFAULT_PROMPT,
    watch: params.getAll("watch").filter(Boolean),
    generate: int("generate", 0, 0, info.limits.max_generate),
    k: int("k", 5, 1, info.limits.max_lens_k),
    sublayers: params.get("sublayers") === "1" && !tuned,
    metric: (METRICS as readonly string[]).includes(m) ? (m as Metric) : "rank",
    tuned,
    precision: params.get("precision") === "bf16" ? "bf16" : "fp32",
  };
}

/** The body of `POST /api/lens` for these settings. */
export function lensRequest(s: LensSettings): LensRequest {
  return { prompt: s.prompt, watch: s.watch, generate: s.generate, k: s.k, sublayers: s.sublayers, tuned: s.tuned, precision: s.precision };
}

/** `params` with `patch` applied: each key replaced by its values, "" (or []) removes it. */
export function patchParams(params: URLSearchParams, patch: Record<string, string | string[]>): URLSearchParams {
  const p = new URLSearchParams(params);
  for (const [key, v] of Object.entries(patch)) {
    p.delete(key);
    (Array.isArray(v) ? v : [v]).filter((x) => x !== "").forEach((x) => p.append(key, x));
  }
  return p;
}

/** Which lens a result is, as its heatmap title says it: "logit lens", "tuned lens (mini-tuned)",
 * with ", bf16" when its projections were approximate. */
export function lensName(view: Pick<LensView, "lens" | "tuned_lens" | "precision">): string {
  const name = view.lens === "tuned" ? `tuned lens${view.tuned_lens ? ` (${view.tuned_lens})` : ""}` : "logit lens";
  return view.precision === "bf16" ? `${name}, bf16` : name;
}

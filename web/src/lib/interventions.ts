// The debugger's interventions: ablate (zero / mean / resample), steer along an SAE latent's
// direction, patch a hook from the second prompt. Each is one URL parameter, in order:
//   ablate=L1.H2            ablate=L1.H2~mean            ablate=L1.H2@5~resample
//   steer=L2.resid_post.F7~4           steer=L2.resid_post.F7~-2.5~blocks.1.hook_resid_pre~3,4
//   patch=blocks.1.hook_resid_pre      patch=blocks.0.attn.hook_z~5,6
// ("~" never occurs in node ids, hook names, numbers or position lists.)
import type { Ablate, Patch, Steer } from "../api/types";

export type AblationMode = "zero" | "mean" | "resample";
export const MODES: AblationMode[] = ["zero", "mean", "resample"];

export type UiIntervention =
  | { type: "ablate"; node: string; mode: AblationMode }
  | { type: "steer"; latent: string; coefficient: number; hook: string | null; positions: number[] | null }
  | { type: "patch"; hook: string; positions: number[] | null };

export const PARAMS = ["ablate", "steer", "patch"] as const;
const SEP = "~";
const NAME = /^[A-Za-z0-9_.@:]+$/; // node ids and hook names

/** "3, 4" -> [3, 4]; "" -> null (every position); anything else -> undefined (invalid). */
export function parsePositions(text: string): number[] | null | undefined {
  const t = text.trim();
  if (t === "") return null;
  const parts = t.split(",").map((x) => x.trim());
  if (!parts.every((x) => /^\d{1,4}$/.test(x))) return undefined;
  return [...new Set(parts.map(Number))];
}

export const showPositions = (p: number[] | null): string => (p === null ? "" : p.join(","));

export function encodeIntervention(iv: UiIntervention): [string, string] {
  if (iv.type === "ablate") return ["ablate", iv.mode === "zero" ? iv.node : `${iv.node}${SEP}${iv.mode}`];
  if (iv.type === "patch") return ["patch", iv.positions === null ? iv.hook : `${iv.hook}${SEP}${showPositions(iv.positions)}`];
  const parts = [iv.latent, String(iv.coefficient), iv.hook ?? "", showPositions(iv.positions)];
  while (parts.length > 2 && parts[parts.length - 1] === "") parts.pop();
  return ["steer", parts.join(SEP)];
}

/** One URL parameter back into an intervention; null for nonsense (it is dropped). */
export function decodeIntervention(key: string, value: string): UiIntervention | null {
  const parts = value.split(SEP);
  const name = parts[0];
  if (!NAME.test(name)) return null;
  if (key === "ablate") {
    if (parts.length > 2) return null;
    const mode = (MODES as string[]).includes(parts[1] ?? "") ? (parts[1] as AblationMode) : "zero";
    return { type: "ablate", node: name, mode };
  }
  if (key === "patch") {
    if (parts.length > 2) return null;
    const positions = parsePositions(parts[1] ?? "");
    return positions === undefined ? null : { type: "patch", hook: name, positions };
  }
  if (key === "steer") {
    if (parts.length > 4 || parts[1] === undefined || parts[1].trim() === "") return null;
    const coefficient = Number(parts[1]);
    const hook = parts[2] ?? "";
    const positions = parsePositions(parts[3] ?? "");
    if (!Number.isFinite(coefficient) || positions === undefined || (hook !== "" && !NAME.test(hook))) return null;
    return { type: "steer", latent: name, coefficient, hook: hook || null, positions };
  }
  return null;
}

export function parseInterventions(params: URLSearchParams): UiIntervention[] {
  const out: UiIntervention[] = [];
  params.forEach((value, key) => {
    if (!(PARAMS as readonly string[]).includes(key)) return;
    const iv = decodeIntervention(key, value);
    if (iv) out.push(iv);
  });
  return out;
}

/** Why an intervention cannot apply now (null: it applies). */
export function inactiveReason(iv: UiIntervention, prompt2: string): string | null {
  if (!prompt2 && (iv.type === "patch" || (iv.type === "ablate" && iv.mode === "resample")))
    return "needs a second prompt (compare with a second prompt)";
  return null;
}

export type ApiIntervention = Ablate | Patch | Steer;

/** The request's interventions: mean ablation averages over the page's prompts; resampling and
 * patching take the second prompt. Inactive ones are left out; null when none applies. */
export function toApi(
  ivs: UiIntervention[],
  prompt: string,
  prompt2: string,
): { interventions: ApiIntervention[]; reference?: string[] } | null {
  const out: ApiIntervention[] = [];
  let mean = false;
  for (const iv of ivs) {
    if (inactiveReason(iv, prompt2) !== null) continue;
    if (iv.type === "ablate") {
      if (iv.mode === "zero") out.push({ type: "ablate", node: iv.node });
      else if (iv.mode === "mean") {
        mean = true;
        out.push({ type: "ablate", node: iv.node, mode: "mean" });
      } else out.push({ type: "ablate", node: iv.node, mode: "resample", source: prompt2 });
    } else if (iv.type === "patch") {
      out.push({ type: "patch", hook: iv.hook, source: prompt2, ...(iv.positions ? { positions: iv.positions } : {}) });
    } else {
      out.push({
        type: "steer",
        latent: iv.latent,
        coefficient: iv.coefficient,
        ...(iv.hook ? { hook: iv.hook } : {}),
        ...(iv.positions ? { positions: iv.positions } : {}),
      });
    }
  }
  if (!out.length) return null;
  return mean ? { interventions: out, reference: prompt2 ? [prompt, prompt2] : [prompt] } : { interventions: out };
}

/** Nodes with an ablation of any mode. */
export const ablatedNodes = (ivs: UiIntervention[]): string[] => ivs.flatMap((iv) => (iv.type === "ablate" ? [iv.node] : []));

/** Latents steered (as written in the row: with its position when steered at one). */
export const steeredNodes = (ivs: UiIntervention[]): string[] =>
  ivs.flatMap((iv) => (iv.type === "steer" ? [iv.positions?.length === 1 ? `${iv.latent}@${iv.positions[0]}` : iv.latent] : []));

/** Add an ablation of `node` (zero), or remove every ablation of it. */
export function toggleAblation(ivs: UiIntervention[], node: string): UiIntervention[] {
  if (ivs.some((iv) => iv.type === "ablate" && iv.node === node)) return ivs.filter((iv) => !(iv.type === "ablate" && iv.node === node));
  return [...ivs, { type: "ablate", node, mode: "zero" }];
}

/** Steer along the latent of a row (`L2.resid_post.F7@5` steers at position 5), or stop. */
export function toggleSteer(ivs: UiIntervention[], node: string, coefficient: number): UiIntervention[] {
  if (steeredNodes(ivs).includes(node)) {
    return ivs.filter((iv) => !(iv.type === "steer" && steeredNodes([iv])[0] === node));
  }
  const m = /^(.*?)(?:@(\d+))?$/.exec(node)!;
  return [...ivs, { type: "steer", latent: m[1], coefficient, hook: null, positions: m[2] === undefined ? null : [Number(m[2])] }];
}

/** A default steering coefficient from a row's activation: as much again (at least 1). */
export function suggestedCoefficient(activation: number | null | undefined): number {
  const a = Math.abs(activation ?? 0);
  return a >= 1 ? Math.round(a * 100) / 100 : 1;
}

type Cfg = { n_layers: number; attn_only: boolean; positional: string };

/** Hook points of the residual stream's width (where a latent's direction can be added). */
export function residualHooks(cfg: Cfg): string[] {
  const out = ["hook_embed", ...(cfg.positional === "learned" ? ["hook_pos_embed"] : [])];
  for (let l = 0; l < cfg.n_layers; l++) {
    out.push(`blocks.${l}.hook_resid_pre`, `blocks.${l}.hook_attn_out`);
    if (!cfg.attn_only) out.push(`blocks.${l}.hook_resid_mid`, `blocks.${l}.hook_mlp_out`);
    out.push(`blocks.${l}.hook_resid_post`);
  }
  return out;
}

/** Hook points worth patching from another prompt: the residual stream, heads, MLP neurons. */
export function patchHooks(cfg: Cfg): string[] {
  const out = ["hook_embed", ...(cfg.positional === "learned" ? ["hook_pos_embed"] : [])];
  for (let l = 0; l < cfg.n_layers; l++) {
    out.push(`blocks.${l}.hook_resid_pre`, `blocks.${l}.attn.hook_z`, `blocks.${l}.attn.hook_pattern`, `blocks.${l}.hook_attn_out`);
    if (!cfg.attn_only) out.push(`blocks.${l}.hook_resid_mid`, `blocks.${l}.mlp.hook_post`, `blocks.${l}.hook_mlp_out`);
    out.push(`blocks.${l}.hook_resid_post`);
  }
  return out;
}

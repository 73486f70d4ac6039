// Node ids, as the server spells them: L5.H3, L2.N517, L2.E3 (an expert of a mixture of experts),
// L6.resid_post.F1234 (an SAE latent), L3.transcoder.F12 / L3.clt.F12 (a transcoder's or a
// cross-layer transcoder's feature), embed, pos, optionally @POS (or @Q:K for heads). One grammar
// everywhere (see lenscope/nodes.py).
import type { ModelInfo } from "../api/types";

export type Kind = "head" | "neuron" | "expert" | "latent" | "embed" | "pos";

export interface NodeRef {
  kind: Kind;
  layer: number | null;
  index: number | null;
  site: string | null;
  position: number | null;
  key: number | null;
}

const HEAD = /^L(\d+)\.H(\d+)(?:@(\d+)(?::(\d+))?)?$/i;
const NEURON = /^L(\d+)\.N(\d+)(?:@(\d+))?$/i;
const EXPERT = /^L(\d+)\.E(\d+)(?:@(\d+))?$/i;
const LATENT = /^L(\d+)\.([A-Za-z_]+)\.F(\d+)(?:@(\d+))?$/i;
const EMBED = /^(embed|pos)(?:@(\d+))?$/i;

const num = (s: string | undefined): number | null => (s === undefined ? null : Number(s));

export function parseNode(text: string): NodeRef | null {
  const s = text.trim();
  let m = HEAD.exec(s);
  if (m) return { kind: "head", layer: +m[1], index: +m[2], site: null, position: num(m[3]), key: num(m[4]) };
  m = NEURON.exec(s);
  if (m) return { kind: "neuron", layer: +m[1], index: +m[2], site: null, position: num(m[3]), key: null };
  m = EXPERT.exec(s);
  if (m) return { kind: "expert", layer: +m[1], index: +m[2], site: null, position: num(m[3]), key: null };
  m = LATENT.exec(s);
  if (m)
    return {
      kind: "latent",
      layer: +m[1],
      index: +m[3],
      site: m[2].toLowerCase().replace(/^hook_/, ""),
      position: num(m[4]),
      key: null,
    };
  m = EMBED.exec(s);
  if (m) return { kind: m[1].toLowerCase() as Kind, layer: null, index: null, site: null, position: num(m[2]), key: null };
  return null;
}

export function formatNode(n: NodeRef): string {
  let base: string;
  if (n.kind === "head") base = `L${n.layer}.H${n.index}`;
  else if (n.kind === "neuron") base = `L${n.layer}.N${n.index}`;
  else if (n.kind === "expert") base = `L${n.layer}.E${n.index}`;
  else if (n.kind === "latent") base = `L${n.layer}.${n.site}.F${n.index}`;
  else base = n.kind;
  if (n.position === null) return base;
  return n.key === null ? `${base}@${n.position}` : `${base}@${n.position}:${n.key}`;
}

/** The node at every position: `L1.H2@5:3` -> `L1.H2`. */
export function componentOf(text: string): string {
  const n = parseNode(text);
  return n ? formatNode({ ...n, position: null, key: null }) : text;
}

/** Heads, neurons and latents (SAE and transcoder features) have pages (records); experts and
 * embeddings do not (the server's /api/nodes refuses them). Given the model's info, a latent has
 * one only when the records hold its dictionary's latents. */
export function hasPage(text: string, info?: Info): boolean {
  const n = parseNode(text);
  if (n === null || !(n.kind === "head" || n.kind === "neuron" || n.kind === "latent")) return false;
  if (n.kind !== "latent" || info?.dictionaries === undefined) return true;
  return dictionaryOf(n, info)?.records === true;
}

type Cfg = {
  n_layers: number;
  n_heads: number;
  d_mlp: number;
  attn_only: boolean;
  positional?: string;
  num_experts?: number;
};

/** What the node checks read of the model's info (`dictionaries` and `n_experts` are newer). */
export type Info = Pick<ModelInfo, "config" | "saes"> & Partial<Pick<ModelInfo, "dictionaries" | "n_experts">>;

/** A dictionary whose latents are nodes: what the server lists, else the spliced SAEs. */
interface Dict {
  node_prefix: string;
  key: string;
  d_sae: number;
  records: boolean;
}

/** Transcoder sites (lenscope/nodes.py DICTIONARY_SITES): keys `blocks.L.<site>`, not hooks. */
const DICTIONARY_SITES = ["transcoder", "clt"];

function latentKey(layer: number, site: string): string {
  return DICTIONARY_SITES.includes(site) ? `blocks.${layer}.${site}` : `blocks.${layer}.hook_${site}`;
}

function dictionaries(info: Info): Dict[] {
  const out: Dict[] = (info.dictionaries ?? []).map((d) => ({ node_prefix: d.node_prefix, key: d.key, d_sae: d.d_sae, records: d.records }));
  for (const s of info.saes)
    if (!out.some((d) => d.node_prefix === s.node_prefix)) out.push({ node_prefix: s.node_prefix, key: s.hook, d_sae: s.d_sae, records: false });
  return out;
}

function dictionaryOf(n: NodeRef, info: Info): Dict | undefined {
  return dictionaries(info).find((d) => d.node_prefix === `L${n.layer}.${n.site}`);
}

/** Expert nodes per layer (a shared expert is the last); 0 for a dense model. */
function expertsOf(info: Info, cfg: Cfg): number {
  if (typeof info.n_experts === "number") return info.n_experts;
  return cfg.attn_only ? 0 : cfg.num_experts ?? 0;
}

/** Why node `text` does not exist in the served model (the server's words, lenscope/nodes.py
 * NodeId.check), or null when it does. Positions are not checked: they depend on a prompt. */
export function nodeProblem(text: string, info: Info): string | null {
  const n = parseNode(text);
  if (!n) return `${text} is not a node id (L1.H2, L0.N17, L2.E3, L2.resid_post.F7, L3.transcoder.F12)`;
  const cfg = info.config as unknown as Cfg;
  const name = formatNode({ ...n, position: null, key: null });
  if (typeof cfg.n_layers !== "number") return null; // no shape to check against: the server will
  if (n.layer !== null && !(n.layer >= 0 && n.layer < cfg.n_layers)) return `node ${name}: layer ${n.layer} does not exist (0..${cfg.n_layers - 1})`;
  const index = n.index ?? 0;
  if (n.kind === "head" && !(index < cfg.n_heads)) return `node ${name}: head ${index} does not exist (0..${cfg.n_heads - 1})`;
  const experts = expertsOf(info, cfg);
  if (n.kind === "neuron" && experts > 0)
    return `node ${name}: the model's MLPs are mixtures of experts; name an expert (L${n.layer}.E0..E${experts - 1}) instead of a neuron`;
  if (n.kind === "expert") {
    if (experts <= 0) return `node ${name}: the model has no mixture of experts`;
    if (!(index < experts)) return `node ${name}: expert ${index} does not exist (0..${experts - 1})`;
  }
  if (n.kind === "neuron") {
    if (cfg.attn_only || !cfg.d_mlp) return `node ${name}: the model is attention-only, it has no neurons`;
    if (!(index < cfg.d_mlp)) return `node ${name}: neuron ${index} does not exist (0..${cfg.d_mlp - 1})`;
  }
  if (n.kind === "pos" && cfg.positional !== undefined && cfg.positional !== "learned") return `node ${name}: the model has no learned position embedding`;
  if (n.kind === "latent") {
    const sae = dictionaryOf(n, info);
    if (!sae) {
      const have = dictionaries(info).map((s) => s.key).join(", ") || "none";
      const what = DICTIONARY_SITES.includes(n.site ?? "") ? "transcoder" : "SAE";
      const which = info.dictionaries === undefined ? "spliced" : "spliced or with records";
      return `node ${name}: no ${what} is ${which} at ${latentKey(n.layer ?? 0, n.site ?? "")} (${which}: ${have})`;
    }
    if (!(index < sae.d_sae)) return `node ${name}: latent ${index} does not exist (0..${sae.d_sae - 1})`;
  }
  return null;
}

export interface Neighbours {
  prev: string | null;
  next: string | null;
  prevLayer: string | null;
  nextLayer: string | null;
}

/** Previous / next node of the same kind (wrapping into the next layer) and the same index one
 * layer earlier (prevLayer) or later (nextLayer), within the model's sizes; none at all for a
 * node the model does not have. */
export function neighbours(text: string, info: Info): Neighbours {
  const none = { prev: null, next: null, prevLayer: null, nextLayer: null };
  const n = parseNode(text);
  if (!n || n.layer === null || n.index === null || nodeProblem(text, info) !== null) return none;
  const cfg = info.config as unknown as Cfg;
  const make = (layer: number, index: number) => formatNode({ ...n, layer, index, position: null, key: null });
  if (n.kind === "latent") {
    const sae = dictionaryOf(n, info);
    if (!sae) return none;
    const others = dictionaries(info).filter((s) => s.node_prefix.endsWith(`.${n.site}`) && s.node_prefix !== sae.node_prefix);
    const layerOf = (p: string) => Number(p.slice(1, p.indexOf(".")));
    const below = others.filter((s) => layerOf(s.node_prefix) < n.layer!).sort((a, b) => layerOf(b.node_prefix) - layerOf(a.node_prefix))[0];
    const above = others.filter((s) => layerOf(s.node_prefix) > n.layer!).sort((a, b) => layerOf(a.node_prefix) - layerOf(b.node_prefix))[0];
    return {
      prev: n.index > 0 ? make(n.layer, n.index - 1) : null,
      next: n.index + 1 < sae.d_sae ? make(n.layer, n.index + 1) : null,
      prevLayer: below && n.index < below.d_sae ? make(layerOf(below.node_prefix), n.index) : null,
      nextLayer: above && n.index < above.d_sae ? make(layerOf(above.node_prefix), n.index) : null,
    };
  }
  const size = n.kind === "head" ? cfg.n_heads : n.kind === "expert" ? expertsOf(info, cfg) : cfg.attn_only ? 0 : cfg.d_mlp;
  if (size <= 0 || (n.kind !== "head" && n.kind !== "neuron" && n.kind !== "expert")) return none;
  const flat = n.layer * size + n.index;
  const total = cfg.n_layers * size;
  const at = (f: number) => make(Math.floor(f / size), f % size);
  return {
    prev: flat > 0 ? at(flat - 1) : null,
    next: flat + 1 < total ? at(flat + 1) : null,
    prevLayer: n.layer > 0 ? make(n.layer - 1, n.index) : null,
    nextLayer: n.layer + 1 < cfg.n_layers ? make(n.layer + 1, n.index) : null,
  };
}

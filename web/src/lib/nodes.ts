// Node ids, as the server spells them: L5.H3, L2.N517, L6.resid_post.F1234, embed, pos,
// optionally @POS (or @Q:K for heads). One grammar everywhere (see lenscope/nodes.py).
import type { ModelInfo } from "../api/types";

export type Kind = "head" | "neuron" | "latent" | "embed" | "pos";

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
const LATENT = /^L(\d+)\.([A-Za-z_]+)\.F(\d+)(?:@(\d+))?$/i;
const EMBED = /^(embed|pos)(?:@(\d+))?$/i;

const num = (s: string | undefined): number | null => (s === undefined ? null : Number(s));

export function parseNode(text: string): NodeRef | null {
  const s = text.trim();
  let m = HEAD.exec(s);
  if (m) return { kind: "head", layer: +m[1], index: +m[2], site: null, position: num(m[3]), key: num(m[4]) };
  m = NEURON.exec(s);
  if (m) return { kind: "neuron", layer: +m[1], index: +m[2], site: null, position: num(m[3]), key: null };
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

/** Heads, neurons and latents have pages (records); embeddings do not. */
export function hasPage(text: string): boolean {
  const n = parseNode(text);
  return n !== null && (n.kind === "head" || n.kind === "neuron" || n.kind === "latent");
}

type Cfg = { n_layers: number; n_heads: number; d_mlp: number; attn_only: boolean; positional?: string };

/** Why node `text` does not exist in the served model (the server's words, lenscope/nodes.py
 * NodeId.check), or null when it does. Positions are not checked: they depend on a prompt. */
export function nodeProblem(text: string, info: Pick<ModelInfo, "config" | "saes">): string | null {
  const n = parseNode(text);
  if (!n) return `${text} is not a node id (L1.H2, L0.N17, L2.resid_post.F7)`;
  const cfg = info.config as unknown as Cfg;
  const name = formatNode({ ...n, position: null, key: null });
  if (typeof cfg.n_layers !== "number") return null; // no shape to check against: the server will
  if (n.layer !== null && !(n.layer >= 0 && n.layer < cfg.n_layers)) return `node ${name}: layer ${n.layer} does not exist (0..${cfg.n_layers - 1})`;
  const index = n.index ?? 0;
  if (n.kind === "head" && !(index < cfg.n_heads)) return `node ${name}: head ${index} does not exist (0..${cfg.n_heads - 1})`;
  if (n.kind === "neuron") {
    if (cfg.attn_only || !cfg.d_mlp) return `node ${name}: the model is attention-only, it has no neurons`;
    if (!(index < cfg.d_mlp)) return `node ${name}: neuron ${index} does not exist (0..${cfg.d_mlp - 1})`;
  }
  if (n.kind === "pos" && cfg.positional !== undefined && cfg.positional !== "learned") return `node ${name}: the model has no learned position embedding`;
  if (n.kind === "latent") {
    const sae = info.saes.find((s) => s.node_prefix === `L${n.layer}.${n.site}`);
    if (!sae) {
      const have = info.saes.map((s) => s.hook).join(", ") || "none";
      return `node ${name}: no SAE is spliced at blocks.${n.layer}.hook_${n.site} (spliced: ${have})`;
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
export function neighbours(text: string, info: Pick<ModelInfo, "config" | "saes">): Neighbours {
  const none = { prev: null, next: null, prevLayer: null, nextLayer: null };
  const n = parseNode(text);
  if (!n || n.layer === null || n.index === null || nodeProblem(text, info) !== null) return none;
  const cfg = info.config as unknown as Cfg;
  const make = (layer: number, index: number) => formatNode({ ...n, layer, index, position: null, key: null });
  if (n.kind === "latent") {
    const sae = info.saes.find((s) => s.node_prefix === `L${n.layer}.${n.site}`);
    if (!sae) return none;
    const others = info.saes.filter((s) => s.node_prefix.endsWith(`.${n.site}`) && s.node_prefix !== sae.node_prefix);
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
  const size = n.kind === "head" ? cfg.n_heads : cfg.attn_only ? 0 : cfg.d_mlp;
  if (size <= 0 || (n.kind !== "head" && n.kind !== "neuron")) return none;
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

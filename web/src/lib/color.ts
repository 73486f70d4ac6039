// Colour scales. Effects: blue for positive, red for negative, white at zero (diverging).
// Activations: orange from white (sequential). Both saturate at `max`.

function clamp01(x: number): number {
  return Math.max(0, Math.min(1, x));
}

export function diverging(value: number | null | undefined, max: number): string {
  if (value === null || value === undefined || !Number.isFinite(value) || max <= 0)
    return "transparent";
  const t = clamp01(Math.abs(value) / max);
  const a = (0.85 * t).toFixed(3);
  return value >= 0 ? `rgba(37, 99, 235, ${a})` : `rgba(220, 38, 38, ${a})`;
}

export function sequential(value: number | null | undefined, max: number): string {
  if (value === null || value === undefined || !Number.isFinite(value) || max <= 0)
    return "transparent";
  const t = clamp01(value / max);
  return `rgba(234, 88, 12, ${(0.85 * t).toFixed(3)})`;
}

/** Rank 1 is dark, worse ranks fade on a log scale up to `vocab`. */
export function rankColor(rank: number, vocab: number): string {
  const t = 1 - clamp01(Math.log(Math.max(rank, 1)) / Math.log(Math.max(vocab, 2)));
  return `rgba(22, 101, 52, ${(0.9 * t * t).toFixed(3)})`;
}

/** Dark text on light cells, light on dark ones. */
export function textOn(alpha: number): string {
  return alpha > 0.55 ? "#fff" : "#111";
}

export function maxAbs(values: Iterable<number | null | undefined>): number {
  let m = 0;
  for (const v of values) if (v !== null && v !== undefined && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Numbers as people read them: 3 significant digits, no "-0". */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(1);
  const s = x.toPrecision(digits);
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}

export function pct(x: number | null | undefined): string {
  if (x === null || x === undefined) return "–";
  return `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;
}

/** A token with its whitespace made visible (leading spaces as ·, newlines as ↵, tabs as →). */
export function showToken(t: string | null | undefined): string {
  if (t === null || t === undefined) return "";
  return t.replace(/\n/g, "↵").replace(/\t/g, "→").replace(/ /g, "·");
}

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
  if (!isNum(x)) return "–";
  return `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;
}

/** A token with its whitespace made visible (leading spaces as ·, newlines as ↵, tabs as →). */
export function showToken(t: string | null | undefined): string {
  if (t === null || t === undefined) return "";
  return t.replace(/\n/g, "↵").replace(/\t/g, "→").replace(/ /g, "·");
}

/** A real, finite number (the API sends null where a value is undefined; NaN and ±Infinity are
 * no better): only these may enter arithmetic. */
export function isNum(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

/** `after - before`, or null ("not a number") unless both are finite numbers: a missing value is
 * never read as 0. */
export function change(after: number | null | undefined, before: number | null | undefined): number | null {
  return isNum(after) && isNum(before) ? after - before : null;
}

/** A token for a narrow cell: whitespace made visible, runs of 5 or more of the same whitespace
 * mark shortened to the mark and its count ("↵····" stays, "↵" + 36 "·" becomes "↵·×36"). */
export function compactToken(t: string | null | undefined): string {
  return showToken(t).replace(/([·→↵])\1{4,}/g, (run, c: string) => `${c}×${run.length}`);
}

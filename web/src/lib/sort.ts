export type Dir = "asc" | "desc";

/** Rows ordered by `key` (by magnitude when `abs`); rows without a value always come last. */
export function sortRows<T>(
  rows: readonly T[],
  key: (row: T) => number | string | null | undefined,
  dir: Dir,
  abs = false,
): T[] {
  const sign = dir === "asc" ? 1 : -1;
  const value = (r: T) => {
    const v = key(r);
    return typeof v === "number" && abs ? Math.abs(v) : v;
  };
  return rows
    .map((row, i) => ({ row, i, v: value(row) }))
    .sort((a, b) => {
      const an = a.v === null || a.v === undefined || (typeof a.v === "number" && Number.isNaN(a.v));
      const bn = b.v === null || b.v === undefined || (typeof b.v === "number" && Number.isNaN(b.v));
      if (an || bn) return an === bn ? a.i - b.i : an ? 1 : -1;
      if (a.v! < b.v!) return -sign;
      if (a.v! > b.v!) return sign;
      return a.i - b.i;
    })
    .map((x) => x.row);
}

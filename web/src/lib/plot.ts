// Axis maths for the small SVG plots: a linear map from data to pixels and round tick values.

/** The linear map taking [d0, d1] onto [r0, r1] (a flat domain maps to the range's middle). */
export function linear(d0: number, d1: number, r0: number, r1: number): (x: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (x: number) => r0 + (x - d0) * k;
}

/** About `n` round ticks (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** The SVG path through the points, in order. */
export function polyline(points: readonly [number, number][], sx: (x: number) => number, sy: (y: number) => number): string {
  return points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
}

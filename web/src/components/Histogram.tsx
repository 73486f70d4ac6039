// An activation histogram: counts[0] below lo, counts[-1] at or above hi, equal bins between.
import { fmt } from "../lib/format";

interface Props {
  lo: number;
  hi: number;
  counts: number[];
  mark?: number | null;
}

export function Histogram({ lo, hi, counts, mark }: Props) {
  const W = 420;
  const H = 120;
  const n = counts.length;
  const top = Math.max(1, ...counts);
  const bw = W / Math.max(n, 1);
  const inner = Math.max(n - 2, 1);
  const edge = (i: number) => lo + ((hi - lo) * i) / inner;
  const markX = mark === null || mark === undefined || hi <= lo ? null : bw + ((mark - lo) / (hi - lo)) * (W - 2 * bw);
  return (
    <figure className="histogram">
      <svg viewBox={`0 0 ${W} ${H + 18}`} width={W} height={H + 18} style={{ maxWidth: "100%" }} role="img" aria-label="activation histogram">
        {counts.map((c, i) => {
          const h = (H * Math.sqrt(c)) / Math.sqrt(top);
          const range =
            i === 0 ? `< ${fmt(lo)}` : i === n - 1 ? `≥ ${fmt(hi)}` : `${fmt(edge(i - 1))} … ${fmt(edge(i))}`;
          return (
            <rect key={i} x={i * bw + 0.5} y={H - h} width={Math.max(bw - 1, 1)} height={h} className="bar">
              <title>{`${range}: ${c}`}</title>
            </rect>
          );
        })}
        {markX !== null && <line x1={markX} x2={markX} y1={0} y2={H} className="mark" />}
        <text x={bw} y={H + 14} className="axis">
          {fmt(lo)}
        </text>
        <text x={W - bw} y={H + 14} textAnchor="end" className="axis">
          {fmt(hi)}
        </text>
      </svg>
      <figcaption>bar height ∝ √count (so rare values stay visible)</figcaption>
    </figure>
  );
}

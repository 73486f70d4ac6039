// A small SVG line plot with axes, optional horizontal guide lines and marked x values.
import { linear, polyline, ticks } from "../lib/plot";
import { fmt } from "../lib/format";

export interface Guide {
  y: number;
  label: string;
}

export interface Mark {
  x: number;
  label: string;
}

interface Props {
  points: [number, number][];
  xLabel: string;
  yLabel: string;
  guides?: Guide[];
  marks?: Mark[];
  width?: number;
  height?: number;
  title?: string;
  testId?: string;
}

const M = { left: 46, right: 12, top: 14, bottom: 36 };

export function LinePlot({ points, xLabel, yLabel, guides = [], marks = [], width = 360, height = 240, title, testId }: Props) {
  const pts = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = pts.map((p) => p[0]);
  const ys = [...pts.map((p) => p[1]), ...guides.map((g) => g.y), 0, 1];
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(1, ...xs);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  const sx = linear(x0, x1, M.left, width - M.right);
  const sy = linear(y0, y1, height - M.bottom, M.top);
  return (
    <svg className="line-plot" width={width} height={height} role="img" aria-label={title ?? `${yLabel} against ${xLabel}`} data-testid={testId}>
      {title && <title>{title}</title>}
      <line x1={M.left} x2={width - M.right} y1={height - M.bottom} y2={height - M.bottom} className="axis" />
      <line x1={M.left} x2={M.left} y1={M.top} y2={height - M.bottom} className="axis" />
      {ticks(x0, x1, 5).map((t) => (
        <g key={`x${t}`}>
          <line x1={sx(t)} x2={sx(t)} y1={height - M.bottom} y2={height - M.bottom + 4} className="axis" />
          <text x={sx(t)} y={height - M.bottom + 15} textAnchor="middle" className="tick">
            {fmt(t)}
          </text>
        </g>
      ))}
      {ticks(y0, y1, 5).map((t) => (
        <g key={`y${t}`}>
          <line x1={M.left - 4} x2={M.left} y1={sy(t)} y2={sy(t)} className="axis" />
          <text x={M.left - 6} y={sy(t) + 4} textAnchor="end" className="tick">
            {fmt(t)}
          </text>
        </g>
      ))}
      <text x={(M.left + width - M.right) / 2} y={height - 4} textAnchor="middle" className="axis-label">
        {xLabel}
      </text>
      <text x={12} y={(M.top + height - M.bottom) / 2} textAnchor="middle" className="axis-label" transform={`rotate(-90 12 ${(M.top + height - M.bottom) / 2})`}>
        {yLabel}
      </text>
      {guides.map((g) => (
        <g key={`g${g.label}`} className="guide">
          <line x1={M.left} x2={width - M.right} y1={sy(g.y)} y2={sy(g.y)} />
          <text x={width - M.right - 2} y={sy(g.y) - 3} textAnchor="end">
            {g.label}
          </text>
        </g>
      ))}
      {marks.map((m) => (
        <g key={`m${m.label}`} className="mark" data-mark={m.label} data-x={m.x}>
          <line x1={sx(m.x)} x2={sx(m.x)} y1={M.top} y2={height - M.bottom} />
          <text x={sx(m.x) + 3} y={M.top + 10}>
            {m.label}
          </text>
        </g>
      ))}
      <path d={polyline(pts, sx, sy)} className="curve" fill="none" />
      {pts.map(([x, y]) => (
        <circle key={`${x},${y}`} cx={sx(x)} cy={sy(y)} r={2.2} className="point" data-x={x} data-y={y} />
      ))}
    </svg>
  );
}

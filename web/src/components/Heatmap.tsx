// A labelled grid of coloured cells (CSS grid; every cell has a tooltip and optional text).
import type { ReactNode } from "react";

/** White text on cells whose colour is strong (an rgba alpha above 0.55), dark text otherwise. */
export function inkFor(background: string): string | undefined {
  const m = /rgba\([^)]*,\s*([\d.]+)\)$/.exec(background);
  return m && Number(m[1]) > 0.55 ? "#fff" : undefined;
}

interface Props {
  rows: string[];
  cols: string[];
  color: (r: number, c: number) => string;
  title: (r: number, c: number) => string;
  text?: (r: number, c: number) => ReactNode;
  cellWidth?: number;
  label: string;
  onCell?: (r: number, c: number) => void;
}

export function Heatmap({ rows, cols, color, title, text, cellWidth = 28, label, onCell }: Props) {
  return (
    <div className="heatmap-wrap">
      <div
        className="heatmap"
        role="grid"
        aria-label={label}
        style={{ gridTemplateColumns: `max-content repeat(${cols.length}, minmax(${cellWidth}px, max-content))` }}
      >
        <div className="hm-corner" />
        {cols.map((c, j) => (
          <div key={`c${j}`} className="hm-col" title={c}>
            {c}
          </div>
        ))}
        {rows.map((r, i) => [
          <div key={`r${i}`} className="hm-row">
            {r}
          </div>,
          ...cols.map((_, j) => (
            <div
              key={`${i}-${j}`}
              role="gridcell"
              className={onCell ? "hm-cell clickable" : "hm-cell"}
              style={{ background: color(i, j), color: inkFor(color(i, j)) }}
              title={title(i, j)}
              onClick={onCell ? () => onCell(i, j) : undefined}
            >
              {text?.(i, j)}
            </div>
          )),
        ])}
      </div>
    </div>
  );
}

// A table sortable by any numeric column (click or Enter on a header), numbers shaded by sign.
import type { ReactNode } from "react";
import { diverging, maxAbs } from "../lib/color";
import { fmt } from "../lib/format";
import { sortRows, type Dir } from "../lib/sort";

export interface Col<T> {
  key: string;
  label: string;
  title?: string;
  value?: (row: T) => number | null | undefined; // numeric, sortable, shaded
  render?: (row: T) => ReactNode; // other cells
  shade?: boolean;
}

interface Props<T> {
  rows: T[];
  cols: Col<T>[];
  rowKey: (row: T) => string;
  sort: string;
  dir: Dir;
  abs?: boolean;
  onSort: (key: string, dir: Dir) => void;
  actions?: (row: T) => ReactNode;
  caption?: string;
  testid?: string;
  highlight?: (row: T) => boolean;
}

export function SortTable<T>({ rows, cols, rowKey, sort, dir, abs, onSort, actions, caption, testid, highlight }: Props<T>) {
  const sortCol = cols.find((c) => c.key === sort && c.value);
  const sorted = sortCol ? sortRows(rows, sortCol.value!, dir, abs) : rows;
  const maxes = new Map(cols.filter((c) => c.value).map((c) => [c.key, maxAbs(rows.map((r) => c.value!(r)))]));
  return (
    <div className="table-wrap">
      <table className="sort-table" data-testid={testid}>
        {caption && <caption>{caption}</caption>}
        <thead>
          <tr>
            {cols.map((c) => {
              const active = c.key === sort && !!c.value;
              return (
                <th
                  key={c.key}
                  scope="col"
                  className={c.value ? "num" : undefined}
                  aria-sort={active ? (dir === "asc" ? "ascending" : "descending") : undefined}
                  title={c.title}
                >
                  {c.value ? (
                    <button
                      type="button"
                      className="sort"
                      data-column={c.key}
                      onClick={() => onSort(c.key, active && dir === "desc" ? "asc" : "desc")}
                    >
                      {c.label}
                      <span className="arrow" aria-hidden="true">
                        {active ? (dir === "desc" ? " ▼" : " ▲") : " ↕"}
                      </span>
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              );
            })}
            {actions && <th scope="col">actions</th>}
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => (
            <tr key={rowKey(r)} data-node={rowKey(r)} className={highlight?.(r) ? "hl" : undefined}>
              {cols.map((c) => {
                if (!c.value) return <td key={c.key}>{c.render?.(r)}</td>;
                const v = c.value(r);
                return (
                  <td
                    key={c.key}
                    className="num"
                    data-column={c.key}
                    data-value={v ?? ""}
                    style={c.shade === false ? undefined : { background: diverging(v, maxes.get(c.key) ?? 0) }}
                  >
                    {fmt(v)}
                  </td>
                );
              })}
              {actions && <td className="actions">{actions(r)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// A table sortable by any numeric column (click or Enter on a header), numbers shaded by sign.
// Tables given `abs` (effects: signed numbers where the big ones of either sign matter) start a
// column at its largest magnitudes (|▼|); clicking the sorted header again goes to signed values,
// largest first (▼), then smallest first (▲), then back to magnitudes. Tables without `abs` toggle
// ▼ / ▲.
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
  abs?: boolean; // rank by magnitude (given: the header cycles |▼| → ▼ → ▲ → |▼|)
  onSort: (key: string, dir: Dir, abs: boolean) => void;
  actions?: (row: T) => ReactNode;
  caption?: string;
  testid?: string;
  highlight?: (row: T) => boolean;
}

/** The sort a click on column `key` asks for, given the current one. */
export function nextSort(key: string, cur: { sort: string; dir: Dir; abs?: boolean }): { sort: string; dir: Dir; abs: boolean } {
  const active = key === cur.sort;
  if (cur.abs === undefined) return { sort: key, dir: active && cur.dir === "desc" ? "asc" : "desc", abs: false };
  if (!active) return { sort: key, dir: "desc", abs: true };
  if (cur.abs && cur.dir === "desc") return { sort: key, dir: "desc", abs: false };
  if (!cur.abs && cur.dir === "desc") return { sort: key, dir: "asc", abs: false };
  return { sort: key, dir: "desc", abs: true };
}

/** The header's arrow and its words: |▼| by magnitude, ▼ / ▲ by signed value. */
export function sortLabel(dir: Dir, abs: boolean): { arrow: string; words: string } {
  if (abs) return dir === "desc" ? { arrow: "|▼|", words: "by magnitude, largest first" } : { arrow: "|▲|", words: "by magnitude, smallest first" };
  return dir === "desc" ? { arrow: "▼", words: "by value, largest first" } : { arrow: "▲", words: "by value, smallest first" };
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
              const now = sortLabel(dir, !!abs);
              const next = nextSort(c.key, { sort, dir, abs });
              const then = sortLabel(next.dir, next.abs);
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
                      data-sort={active ? (abs ? `abs-${dir}` : dir) : undefined}
                      title={`${c.title ? `${c.title}. ` : ""}${active ? `Sorted ${now.words}; click` : "Click"} to sort ${then.words}.`}
                      onClick={() => onSort(next.sort, next.dir, next.abs)}
                    >
                      {c.label}
                      <span className="arrow" aria-hidden="true">
                        {active ? ` ${now.arrow}` : " ↕"}
                      </span>
                      {active && <span className="sr-only"> (sorted {now.words})</span>}
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

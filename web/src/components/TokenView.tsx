// Tokens in a row, each shaded by a value (diverging for effects, sequential for activations).
import { diverging, maxAbs, sequential } from "../lib/color";
import { fmt, showToken } from "../lib/format";

interface Props {
  tokens: string[];
  values?: (number | null)[];
  scale?: "diverging" | "sequential";
  max?: number;
  marked?: number[]; // positions to outline (the answer, the key)
  selected?: number | null;
  onSelect?: (position: number) => void;
  label?: string;
}

export function TokenView({ tokens, values, scale = "diverging", max, marked = [], selected, onSelect, label }: Props) {
  const m = max ?? maxAbs(values ?? []);
  const color = scale === "diverging" ? diverging : sequential;
  return (
    <div className="tokens" aria-label={label ?? "tokens"} data-testid="token-view">
      {tokens.map((t, i) => {
        const v = values?.[i] ?? null;
        const cls = ["tok", marked.includes(i) ? "marked" : "", selected === i ? "selected" : ""].join(" ");
        const title = `${i}: ${JSON.stringify(t)}${v === null ? "" : ` = ${fmt(v)}`}`;
        const style = { background: color(v, m) };
        return onSelect ? (
          <button key={i} type="button" className={cls} style={style} title={title} onClick={() => onSelect(i)}>
            {showToken(t)}
          </button>
        ) : (
          <span key={i} className={cls} style={style} title={title}>
            {showToken(t)}
          </span>
        );
      })}
    </div>
  );
}

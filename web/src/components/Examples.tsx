// Dataset examples: each a context window with tokens shaded by the node's activation.
import type { Example } from "../api/types";
import { fmt } from "../lib/format";
import { TokenView } from "./TokenView";

export function Examples({ examples, max, empty }: { examples: Example[]; max: number; empty: string }) {
  if (!examples.length) return <p className="empty">{empty}</p>;
  return (
    <ol className="examples" data-testid="examples">
      {examples.map((e, i) => (
        <li key={`${e.set}-${e.bin}-${e.rank}-${i}`}>
          <span className="ex-act" title="activation at the example token">
            {fmt(e.activation)}
          </span>
          <TokenView tokens={e.tokens} values={e.acts} scale="sequential" max={max} marked={[e.center]} label={`example ${i + 1}`} />
        </li>
      ))}
    </ol>
  );
}

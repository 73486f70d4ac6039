// Row actions shared by the node table and the trace table: ablate, steer (SAE latents), trace
// (heads: through the query, key or value), trace downstream, open the node's page (or use the
// NodeLink on its id).
import { componentOf, hasPage, parseNode } from "../../lib/nodes";
import { Link } from "../../lib/router";

interface Props {
  node: string;
  ablated: boolean;
  onAblate: (node: string) => void;
  steered?: boolean;
  onSteer?: (node: string) => void;
  onTrace: (hop: string) => void;
  onDownstream?: (node: string) => void;
  onAttend?: (node: string) => void;
  showPage?: boolean;
}

export function NodeActions({ node, ablated, onAblate, steered = false, onSteer, onTrace, onDownstream, onAttend, showPage = false }: Props) {
  const n = parseNode(node);
  const head = n?.kind === "head";
  return (
    <span className="row-actions">
      <button type="button" className={ablated ? "on" : undefined} onClick={() => onAblate(node)} title={ablated ? "restore this node" : "zero-ablate this node and ask again"} aria-pressed={ablated} data-action="ablate">
        {ablated ? "restore" : "ablate"}
      </button>
      {onSteer && n?.kind === "latent" && (
        <button
          type="button"
          className={steered ? "on" : undefined}
          onClick={() => onSteer(node)}
          title={steered ? "stop steering along this latent" : "add this latent's decoder direction to the residual stream (set the coefficient under Interventions)"}
          aria-pressed={steered}
          data-action="steer"
        >
          {steered ? "unsteer" : "steer"}
        </button>
      )}
      {head ? (
        <span className="qkv" role="group" aria-label={`trace ${node} through`}>
          trace
          {(["q", "k", "v"] as const).map((v) => (
            <button key={v} type="button" onClick={() => onTrace(`${node}:${v}`)} title={`what feeds ${node}'s ${v === "q" ? "query" : v === "k" ? "key" : "value"}`} data-action={`trace-${v}`}>
              {v.toUpperCase()}
            </button>
          ))}
        </span>
      ) : (
        <button type="button" onClick={() => onTrace(node)} title={`what feeds ${node}`} data-action="trace">
          trace
        </button>
      )}
      {onDownstream && (
        <button type="button" onClick={() => onDownstream(node)} title={`what ${node}'s output feeds`} data-action="downstream">
          ↓
        </button>
      )}
      {onAttend && head && n?.key !== null && n?.position !== null && (
        <button type="button" onClick={() => onAttend(node)} title="why does this head attend here?" data-action="attend">
          why attend?
        </button>
      )}
      {showPage && hasPage(node) && (
        <Link to={`/node/${componentOf(node)}`} className="page-link" title={`${componentOf(node)}'s page`} data-action="page">
          page
        </Link>
      )}
    </span>
  );
}

/** A node id that links to the node's page when it has one. */
export function NodeLink({ node }: { node: string }) {
  if (!hasPage(node)) return <code>{node}</code>;
  return (
    <Link to={`/node/${componentOf(node)}`} title={`open ${componentOf(node)}'s page`} className="node-link" data-action="page">
      <code>{node}</code>
    </Link>
  );
}

// Calls to the graph and discovery routes, with a check that each answer has the shape the pages
// read (their types are hand-written, so a server that answers otherwise gets one clear sentence
// instead of a blank page).
import { ApiError, getAs, postAs } from "./client";
import type {
  AttributionGraph,
  Circuit,
  DiscoverRequest,
  DiscoverTask,
  GraphRequest,
  InterveneRequest,
  InterveneResult,
} from "./graphTypes";

function bad(route: string, what: string): ApiError {
  return new ApiError(`${route} answered without ${what}; is the server older than this page?`, 200, "BadResponse");
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isArr = Array.isArray;

export function checkGraph(x: unknown): AttributionGraph {
  const r = "/api/graph";
  if (!isObj(x)) throw bad(r, "a graph");
  if (!isArr(x.nodes) || !x.nodes.every((n) => isObj(n) && typeof n.node_id === "string")) throw bad(r, "a list of nodes");
  if (!isArr(x.links) || !x.links.every((l) => isObj(l) && typeof l.source === "string" && typeof l.target === "string" && typeof l.weight === "number"))
    throw bad(r, "a list of links");
  if (!isObj(x.metadata) || !isArr(x.metadata.prompt_tokens)) throw bad(r, "metadata.prompt_tokens");
  if (!isObj(x.scores)) throw bad(r, "scores");
  return x as unknown as AttributionGraph;
}

export function checkCircuit(x: unknown): Circuit {
  const r = "/api/discover";
  if (!isObj(x)) throw bad(r, "a circuit");
  if (!isArr(x.nodes) || !x.nodes.every((n) => isObj(n) && typeof n.node_id === "string")) throw bad(r, "a list of nodes");
  if (!isArr(x.links) || !x.links.every((l) => isObj(l) && typeof l.source === "string" && typeof l.target === "string" && typeof l.weight === "number"))
    throw bad(r, "a list of links");
  if (!isObj(x.faithfulness) || !isArr(x.faithfulness.curve)) throw bad(r, "a faithfulness curve");
  return x as unknown as Circuit;
}

/** The route answers two top-token lists (before the edits, after them) whose entries carry both
 * probabilities ({token, id, before, after}); the page shows each list's own side as `prob`. */
export function checkIntervene(x: unknown): InterveneResult {
  const r = "/api/graph/intervene";
  const toks = (v: unknown) =>
    isArr(v) && v.every((t) => isObj(t) && typeof t.token === "string" && typeof t.before === "number" && typeof t.after === "number");
  if (!isObj(x) || !toks(x.before) || !toks(x.after)) throw bad(r, "before and after token lists");
  const side = (v: unknown, key: "before" | "after") =>
    (v as { token: string; before: number; after: number }[]).map((t) => ({ token: t.token, prob: t[key] }));
  return { before: side(x.before, "before"), after: side(x.after, "after") };
}

export function checkTasks(x: unknown): DiscoverTask[] {
  if (isObj(x) && isArr(x.tasks)) x = x.tasks; // a list, or an object holding one
  if (!isArr(x) || !x.every((t) => isObj(t) && typeof t.name === "string")) throw bad("/api/discover/tasks", "a list of tasks");
  return x as DiscoverTask[];
}

export const fetchGraph = (req: GraphRequest, signal?: AbortSignal): Promise<AttributionGraph> =>
  postAs<unknown>("/api/graph", req, signal).then(checkGraph);

export const intervene = (req: InterveneRequest, signal?: AbortSignal): Promise<InterveneResult> =>
  postAs<unknown>("/api/graph/intervene", req, signal).then(checkIntervene);

export const discoverTasks = (signal?: AbortSignal): Promise<DiscoverTask[]> =>
  getAs<unknown>("/api/discover/tasks", signal).then(checkTasks);

export const discover = (req: DiscoverRequest, signal?: AbortSignal): Promise<Circuit> =>
  postAs<unknown>("/api/discover", req, signal).then(checkCircuit);

// A typed fetch client over the generated OpenAPI types: the path picks the request and response
// types, so a server change that breaks the page breaks the type check.
import type { paths } from "./schema";

type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
type Ok<Op> = Op extends { responses: { 200: infer R } } ? JsonOf<R> : never;
type Body<Op> = Op extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

type PostPath = { [P in keyof paths]: paths[P] extends { post: object } ? P : never }[keyof paths];
type GetPath = { [P in keyof paths]: paths[P] extends { get: object } ? P : never }[keyof paths];
type PostOp<P extends PostPath> = paths[P] extends { post: infer Op } ? Op : never;
type GetOp<P extends GetPath> = paths[P] extends { get: infer Op } ? Op : never;

/** A failed request: `message` is the server's one human sentence (or what went wrong locally). */
export class ApiError extends Error {
  status: number;
  kind: string;
  constructor(message: string, status: number, kind: string) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

const TOKEN_KEY = "lenscope-token";

/** Take `?token=` from the page URL once, keep it for this tab, and drop it from the URL. */
export function adoptToken(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    window.history.replaceState(window.history.state, "", url.toString());
  }
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { Accept: "application/json" };
  if (json) h["Content-Type"] = "application/json";
  const token = typeof sessionStorage !== "undefined" ? sessionStorage.getItem(TOKEN_KEY) : null;
  if (token) h["Authorization"] = `Bearer ${token}`;
  return h;
}

export async function parseResponse<T>(res: Response): Promise<T> {
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const body = data as { error?: string; type?: string } | null;
    const message = body?.error ?? `the server answered ${res.status} ${res.statusText}`;
    throw new ApiError(message, res.status, body?.type ?? "HTTPError");
  }
  if (data === null) throw new ApiError("the server sent no JSON", res.status, "BadResponse");
  return data as T;
}

async function send<T>(url: string, init: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(
      `cannot reach the lenscope server (${(e as Error).message}); is \`lenscope serve\` running?`,
      0,
      "Network",
    );
  }
  return parseResponse<T>(res);
}

export function post<P extends PostPath>(
  path: P,
  body: Body<PostOp<P>>,
  pathParams: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Ok<PostOp<P>>> {
  return send(fill(path, pathParams), {
    method: "POST",
    headers: headers(true),
    body: JSON.stringify(body),
    signal,
  });
}

export function get<P extends GetPath>(
  path: P,
  query: Record<string, string | number | string[] | undefined> = {},
  pathParams: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Ok<GetOp<P>>> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else qs.set(k, String(v));
  }
  const q = qs.toString();
  return send(fill(path, pathParams) + (q ? `?${q}` : ""), {
    method: "GET",
    headers: headers(false),
    signal,
  });
}

export function fill(path: string, params: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, k: string) => {
    if (!(k in params)) throw new Error(`missing path parameter ${k}`);
    return encodeURIComponent(params[k]);
  });
}

/** POST to a route whose types are declared by hand (not yet in the generated schema); the caller
 * checks the answer's shape. */
export function postAs<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return send(path, { method: "POST", headers: headers(true), body: JSON.stringify(body), signal });
}

/** GET a route whose types are declared by hand (see postAs). */
export function getAs<T>(path: string, signal?: AbortSignal): Promise<T> {
  return send(path, { method: "GET", headers: headers(false), signal });
}

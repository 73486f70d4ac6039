import { describe, expect, it } from "vitest";
import { ApiError, fill, parseResponse } from "./client";

describe("API client", () => {
  it("turns an error body into its human message", async () => {
    const res = new Response(JSON.stringify({ error: "top_k: Input should be less than or equal to 50", status: 422, type: "ValidationError" }), { status: 422 });
    const err = await parseResponse(res).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).message).toBe("top_k: Input should be less than or equal to 50");
    expect((err as ApiError).status).toBe(422);
    expect((err as ApiError).kind).toBe("ValidationError");
  });

  it("says what happened when the body is not JSON", async () => {
    const err = await parseResponse(new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" })).catch((e: unknown) => e);
    expect((err as ApiError).message).toBe("the server answered 502 Bad Gateway");
  });

  it("passes JSON through on success", async () => {
    expect(await parseResponse<{ a: number }>(new Response('{"a": 1}', { status: 200 }))).toEqual({ a: 1 });
  });

  it("encodes path parameters", () => {
    expect(fill("/api/nodes/{node_id}/explain", { node_id: "L6.resid_post.F1" })).toBe("/api/nodes/L6.resid_post.F1/explain");
    expect(fill("/api/nodes/{node_id}", { node_id: "../x y" })).toBe("/api/nodes/..%2Fx%20y");
    expect(() => fill("/api/nodes/{node_id}", {})).toThrow();
  });
});

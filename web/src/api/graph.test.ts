// @vitest-environment node
import { describe, expect, it } from "vitest";
import { CIRCUIT, GRAPH, INTERVENE_ANSWER, INTERVENED, TASKS } from "../test/graphFixtures";
import { ApiError } from "./client";
import { checkCircuit, checkGraph, checkIntervene, checkTasks } from "./graph";

describe("graph route answers", () => {
  it("pass through when they have the routes' shapes", () => {
    expect(checkGraph(JSON.parse(JSON.stringify(GRAPH)))).toEqual(GRAPH);
    expect(checkCircuit(CIRCUIT)).toBe(CIRCUIT);
    expect(checkIntervene(INTERVENE_ANSWER)).toEqual(INTERVENED);
    expect(checkTasks(TASKS)).toBe(TASKS);
    expect(checkTasks({ tasks: TASKS })).toBe(TASKS);
  });

  it("say in one sentence what a malformed answer lacks", () => {
    const fails = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ApiError);
        return (e as ApiError).message;
      }
      throw new Error("accepted a malformed answer");
    };
    expect(fails(() => checkGraph({ ...GRAPH, links: [{ source: "a", target: "b", weight: "1" }] }))).toBe(
      "/api/graph answered without a list of links; is the server older than this page?",
    );
    expect(fails(() => checkGraph({ ...GRAPH, metadata: {} }))).toContain("metadata.prompt_tokens");
    expect(fails(() => checkGraph(null))).toContain("without a graph");
    expect(fails(() => checkCircuit({ ...CIRCUIT, faithfulness: { area: 1 } }))).toContain("faithfulness curve");
    expect(fails(() => checkIntervene({ before: [] }))).toContain("before and after");
    expect(fails(() => checkTasks({ name: "x" }))).toContain("/api/discover/tasks");
  });
});

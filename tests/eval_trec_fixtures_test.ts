// Every measure src/eval/metrics.ts computes, compared with trec_eval 10.0's own expected
// output (usnistgov/trec_eval test/, copied to ../shared/trec_eval_fixtures), per query and
// `all`, to the printed precision (4 decimals; integers for the num_* counts).

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { readTrecQrels, readTrecRun } from "../src/data/trec.ts";
import { type EvalOptions, evaluate, formatMeasure } from "../src/eval/metrics.ts";

const FIXTURES = Deno.env.get("TREC_EVAL_FIXTURES") ?? "../shared/trec_eval_fixtures";

/** Parses trec_eval `-q` output: measure -> qid -> printed value. */
async function readExpected(name: string): Promise<Map<string, Map<string, string>>> {
  const text = await Deno.readTextFile(`${FIXTURES}/${name}`);
  const out = new Map<string, Map<string, string>>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const [measure, qid, value] = line.split("\t").map((s) => s.trim());
    if (!out.has(measure)) out.set(measure, new Map());
    out.get(measure)!.set(qid, value);
  }
  return out;
}

async function compareWithFixture(
  qrelsFile: string,
  runFile: string,
  expectedFile: string,
  options: EvalOptions,
) {
  const qrels = await readTrecQrels(`${FIXTURES}/${qrelsFile}`);
  const { run } = await readTrecRun(`${FIXTURES}/${runFile}`);
  const expected = await readExpected(expectedFile);
  const { perQuery, all } = evaluate(qrels, run, options);
  const rows: [string, Record<string, number>][] = [...perQuery, ["all", all]];
  const mismatches: string[] = [];
  let compared = 0;
  for (const [qid, measures] of rows) {
    for (const [name, value] of Object.entries(measures)) {
      const want = expected.get(name)?.get(qid);
      if (want === undefined) {
        mismatches.push(`${name} ${qid}: not in ${expectedFile}`);
        continue;
      }
      compared++;
      const got = formatMeasure(name, value);
      if (got !== want) mismatches.push(`${name} ${qid}: got ${got}, trec_eval ${want}`);
    }
  }
  // The fixture's query set must be exactly ours (per-query rows, -c included).
  const fixtureQids = [...expected.get("map")!.keys()];
  assertEquals(fixtureQids, [...perQuery.keys(), "all"]);
  assertEquals(mismatches, []);
  // 3 queries + all, 36 measures each (3 num_*, map, recip_rank, 9 P, 9 recall, ndcg,
  // 9 ndcg_cut, 3 success), plus num_q in all.
  assertEquals(compared, 4 * 36 + 1);
}

Deno.test("trec_eval -m all_trec -q: qrels.test results.test (out.test.aq)", async () => {
  await compareWithFixture("qrels.test", "results.test", "out.test.aq", {});
});

Deno.test("trec_eval -c: missing query 302 scored as zero (out.test.aqc)", async () => {
  await compareWithFixture("qrels.test", "results.trunc", "out.test.aqc", {
    averageComplete: true,
  });
});

Deno.test("trec_eval -c -M100 (out.test.aqcM)", async () => {
  await compareWithFixture("qrels.test", "results.trunc", "out.test.aqcM", {
    averageComplete: true,
    maxDocsPerQuery: 100,
  });
});

Deno.test("trec_eval -l2 on graded qrels with -1 grades (out.test.aql)", async () => {
  await compareWithFixture("qrels.rel_level", "results.test", "out.test.aql", {
    relevanceLevel: 2,
  });
});

Deno.test("summary-only output (out.test.a) equals our all row", async () => {
  const qrels = await readTrecQrels(`${FIXTURES}/qrels.test`);
  const { run } = await readTrecRun(`${FIXTURES}/results.test`);
  const { all } = evaluate(qrels, run);
  const text = await Deno.readTextFile(`${FIXTURES}/out.test.a`);
  const want = new Map(
    text.trim().split("\n").map((l) => l.split("\t").map((s) => s.trim())).map((f) => [f[0], f[2]]),
  );
  for (const [name, value] of Object.entries(all)) {
    assertEquals(formatMeasure(name, value), want.get(name), name);
  }
});

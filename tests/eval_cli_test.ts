// `deno task eval` (scripts/eval.ts) end to end: the --json contract against trec_eval's own
// summary output, -c/-M/-l flags, --per-query, --compare, --help and --model usage errors.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { formatMeasure } from "../src/eval/metrics.ts";

const F = Deno.env.get("TREC_EVAL_FIXTURES") ?? "../shared/trec_eval_fixtures";

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/eval.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

/** `measure -> printed value` of the `all` rows of a trec_eval output file. */
async function allRow(file: string): Promise<Map<string, string>> {
  const rows = (await Deno.readTextFile(`${F}/${file}`)).trim().split("\n").map((l) =>
    l.split("\t").map((s) => s.trim())
  );
  return new Map(rows.filter((r) => r[1] === "all").map((r) => [r[0], r[2]]));
}

async function checkJson(args: string[], fixture: string) {
  const r = await cli(...args, "--json");
  strictEqual(r.code, 0, r.err);
  const got = JSON.parse(r.out) as Record<string, number>;
  const want = await allRow(fixture);
  ok(Object.keys(got).length >= 37);
  for (const [k, v] of Object.entries(got)) strictEqual(formatMeasure(k, v), want.get(k), k);
}

Deno.test("--json prints trec_eval's all row (out.test.a, aqc, aqcM, aql)", async () => {
  await checkJson(["--qrels", `${F}/qrels.test`, "--run", `${F}/results.test`], "out.test.a");
  await checkJson(
    ["--qrels", `${F}/qrels.test`, "--run", `${F}/results.trunc`, "-c"],
    "out.test.aqc",
  );
  await checkJson(
    ["--qrels", `${F}/qrels.test`, "--run", `${F}/results.trunc`, "-c", "-M", "100"],
    "out.test.aqcM",
  );
  await checkJson(
    ["--qrels", `${F}/qrels.rel_level`, "--run", `${F}/results.test`, "-l2"],
    "out.test.aql",
  );
});

Deno.test("table and --per-query print trec_eval's lines", async () => {
  const r = await cli("--qrels", `${F}/qrels.test`, "--run", `${F}/results.test`, "--per-query");
  strictEqual(r.code, 0, r.err);
  const lines = r.out.trim().split("\n");
  const expected = (await Deno.readTextFile(`${F}/out.test.aq`)).split("\n");
  // Every line we print appears verbatim in trec_eval's -q output.
  for (const l of lines) ok(expected.includes(l), `not in out.test.aq: ${JSON.stringify(l)}`);
  strictEqual(lines.length, 3 * 36 + 37);
});

Deno.test("--compare gives t-test, TOST and bootstrap on per-query ndcg_cut_10", async () => {
  const r = await cli(
    "--compare",
    `${F}/results.test`,
    `${F}/results.trunc`,
    "--qrels",
    `${F}/qrels.test`,
    "--json",
  );
  strictEqual(r.code, 0, r.err);
  const o = JSON.parse(r.out);
  strictEqual(o.metric, "ndcg_cut_10");
  strictEqual(o.queries, 3);
  ok(o.t_test.p_value > 0 && o.t_test.p_value <= 1);
  strictEqual(typeof o.tost.equivalent, "boolean");
  strictEqual(o.bootstrap.ci.length, 2);
  const same = await cli(
    "--compare",
    `${F}/results.test`,
    `${F}/results.test`,
    "--qrels",
    `${F}/qrels.test`,
    "--json",
  );
  const s = JSON.parse(same.out);
  strictEqual(s.mean_diff, 0);
  strictEqual(s.t_test.p_value, 1);
  strictEqual(s.tost.equivalent, true);
});

Deno.test("--help and usage errors (--model included)", async () => {
  const h = await cli("--help");
  strictEqual(h.code, 0);
  for (const flag of ["--qrels", "--bm25", "--compare", "-c", "-M", "--per-query", "--model"]) {
    ok(h.out.includes(flag), flag);
  }
  // Dense retrieval itself is tested in dense_test.ts; here its argument checks.
  const m = await cli("--model", "use-lite", "--run", `${F}/results.test`);
  strictEqual(m.code, 2);
  deepStrictEqual(
    m.err.trim(),
    "eval: --model retrieves its own run; do not give --run (use --rerank to re-rank)",
  );
  const u = await cli("--qrels", `${F}/qrels.test`);
  strictEqual(u.code, 2);
  ok(u.err.includes("give --qrels and --run"));
  const bad = await cli("--qrels", `${F}/results.test`, "--run", `${F}/results.test`);
  strictEqual(bad.code, 2);
  ok(bad.err.includes(`${F}/results.test:1: expected 4 whitespace-separated fields`), bad.err);
});

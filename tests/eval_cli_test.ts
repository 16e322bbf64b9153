// `deno task eval` (scripts/eval.ts) end to end: the --json contract against trec_eval's own
// summary output, -c/-M/-l flags, --per-query, --compare, --help and --model usage errors;
// every flag checked before anything loads; --out replaced only when complete.

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

/** The names and bytes of the files of a directory, to compare before and after. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    out.set(e.name, e.isFile ? [...await Deno.readFile(`${dir}/${e.name}`)].join(",") : "<dir>");
  }
  return new Map([...out].sort());
}

Deno.test("every flag and file is checked before anything loads: one line, exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // No dataset there: had --model or --bm25 loaded it before checking the flags, the error
    // would be "dataset 'scifact' not found" instead.
    const noData = ["--data", `${dir}/no-such-dataset`];
    const model = ["--model", "use-lite", ...noData];
    const bm25 = ["--bm25", ...noData];
    const [q, r, t] = [`${F}/qrels.test`, `${F}/results.test`, `${F}/results.trunc`];
    const score = ["--qrels", q, "--run", r];
    const cmp = ["--compare", r, t, "--qrels", q];
    await Deno.writeTextFile(`${dir}/empty.qrels`, "");
    await Deno.writeTextFile(`${dir}/old.run`, "old\n");
    const before = await snapshot(dir);
    const cases: [string[], string | RegExp][] = [
      [[...model, "--max-length", "0"], "--max-length must be a positive integer (got 0)"],
      [[...model, "--max-length=-1"], "--max-length must be a positive integer (got -1)"],
      [[...model, "--k", "0"], "--k must be a positive integer (got 0)"],
      [[...model, "--batch-size", "0"], "--batch-size must be a positive integer (got 0)"],
      [
        [...model, "--k", "10", "--depth", "20"],
        "--k 10 and --depth 20 say different things; give one of them",
      ],
      [["--model", `${dir}/nope`, ...noData], `${dir}/nope: no such model directory (--model)`],
      [[...model, "--rerank", `${dir}/nope.run`], `${dir}/nope.run: no such file (--rerank)`],
      [[...bm25, "--depth", "0"], "--depth must be a positive integer (got 0)"],
      [[...bm25, "--depth", "x"], "--depth must be a positive integer (got x)"],
      [
        [...bm25, "--out", `${dir}/missing/run.txt`],
        `${dir}/missing: no such directory (--out ${dir}/missing/run.txt)`,
      ],
      [[...bm25, "--out", dir], `${dir}: is a directory, not a file (--out)`],
      [
        [...bm25, "--qrels", q, "--out", q],
        `--out ${q} is the --qrels file; it would be overwritten`,
      ],
      [[...bm25, "--rerank", r], "--rerank applies only with --model (not with --bm25)"],
      [[...bm25, "--run", r], "--bm25 retrieves its own run; do not give --run"],
      [[...score, "--depth", "10"], "--depth applies only with --model or --bm25 or --index"],
      [
        [...score, "--out", `${dir}/old.run`],
        "--out applies only with --model or --bm25 or --index",
      ],
      [[...score, "-M", "0"], "-M must be a positive integer (got 0)"],
      [[...score, "-l", "1.5"], "-l must be an integer (got 1.5)"],
      [[...score, "--samples", "5"], "--samples applies only with --compare"],
      [[...score, "extra"], "unexpected arguments: extra"],
      [["--qrels", q, "--run", `${dir}/nope.run`], `${dir}/nope.run: no such file (--run)`],
      [["--qrels", dir, "--run", r], `${dir}: is a directory, not a file (--qrels)`],
      [[...cmp, "--samples", "0"], "--samples must be a positive integer (got 0)"],
      [[...cmp, "--seed", "1.5"], "--seed must be an integer (got 1.5)"],
      [[...cmp, "--alpha", "0.5"], "--alpha must be a number > 0 and < 0.5 (got 0.5)"],
      [[...cmp, "--margin", "0"], "--margin must be a number > 0 (got 0)"],
      [[...cmp, "--metric", "nope"], /^--metric: unknown measure 'nope' \(one of: .*ndcg_cut_10/],
      [
        [...cmp, "--per-query"],
        "--per-query applies only with --model or --bm25 or --index or scoring a --run (not with --compare)",
      ],
      [
        [...cmp, "--bm25"],
        "--compare compares two run files; do not give --bm25 or --model with it",
      ],
      [
        ["--compare", r, `${dir}/nope.run`, "--qrels", q],
        `${dir}/nope.run: no such file (--compare)`,
      ],
      [
        ["--compare", r, t, "--qrels", `${dir}/empty.qrels`],
        /no (judged )?queries/,
      ],
    ];
    for (let i = 0; i < cases.length; i += 8) {
      const batch = cases.slice(i, i + 8);
      const results = await Promise.all(batch.map(([args]) => cli(...args)));
      results.forEach((res, j) => {
        const [args, want] = batch[j];
        strictEqual(res.code, 2, `${args.join(" ")}: ${res.err}`);
        const line = res.err.trim();
        ok(!line.includes("\n"), `one line: ${res.err}`);
        ok(line.startsWith("eval: "), res.err);
        if (typeof want === "string") strictEqual(line, `eval: ${want}`, args.join(" "));
        else ok(want.test(line.slice(6)), `${args.join(" ")}: ${res.err}`);
      });
    }
    deepStrictEqual(await snapshot(dir), before, "nothing written, no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--bm25 --out replaces the old run only when complete; bad --qrels leaves it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = `${dir}/data`;
    await Deno.mkdir(`${data}/qrels`, { recursive: true });
    const docs = [["d1", "cats purr when happy"], ["d2", "dogs bark"], ["d3", "bread bakes"]];
    await Deno.writeTextFile(
      `${data}/corpus.jsonl`,
      docs.map(([id, text]) => JSON.stringify({ _id: id, title: "", text })).join("\n"),
    );
    await Deno.writeTextFile(
      `${data}/queries.jsonl`,
      [["q1", "why do cats purr"], ["q2", "baking bread"]]
        .map(([id, text]) => JSON.stringify({ _id: id, text })).join("\n"),
    );
    await Deno.writeTextFile(
      `${data}/qrels/test.tsv`,
      "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n",
    );
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/run.txt`, "old run\n");
    await Deno.writeTextFile(`${out}/bad.qrels`, "q1 0 d1\n");
    const before = await snapshot(out);
    // Bad qrels are found before the retrieval, and the old run is kept.
    const bad = await cli(
      "--bm25",
      "--data",
      data,
      "--qrels",
      `${out}/bad.qrels`,
      "--out",
      `${out}/run.txt`,
    );
    strictEqual(bad.code, 2, bad.err);
    ok(bad.err.includes(`${out}/bad.qrels:1: expected 4 whitespace-separated fields`), bad.err);
    deepStrictEqual(await snapshot(out), before);
    // A complete run replaces it; no temporary file is left.
    const good = await cli("--bm25", "--data", data, "--out", `${out}/run.txt`, "--json");
    strictEqual(good.code, 0, good.err);
    strictEqual(JSON.parse(good.out).num_q, 2);
    deepStrictEqual([...(await snapshot(out)).keys()], ["bad.qrels", "run.txt"]);
    const lines = (await Deno.readTextFile(`${out}/run.txt`)).trim().split("\n");
    ok(lines.length >= 2, lines.join("\n")); // BM25 returns the documents sharing a term
    ok(lines.every((l) => / Q0 d\d \d /.test(l) && l.endsWith(" bm25")), lines.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Hard-negative mining: the rank window, judged-relevant exclusion, the false-negative filters
// (ratio and margin), top and seeded random sampling, the stats, both output layouts, and the
// trainer reading the output as negatives (and as teacher scores); the CLI end to end on a tiny
// BEIR directory, and its flag checks.
import { deepStrictEqual, ok } from "node:assert/strict";
import type { Doc, Qrels, Run } from "../src/data/types.ts";
import {
  bm25Retriever,
  type CandidateRetriever,
  denseRetriever,
  type MinedTuple,
  mineHardNegatives,
  writeMined,
} from "../src/train/mine.ts";
import { beirTriples } from "../src/train/data.ts";
import { readTeacherScores } from "../src/losses/margin_mse.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { loadEncoder } from "../src/models/load.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { assertClose, gpu, runScript, tinyBeir, withTempDir } from "./helpers.ts";

/** A retriever over a fixed list: documents d1..d10 ranked in order, scores 10, 9, ..., 1. */
function fixedRetriever(posScore: number): CandidateRetriever {
  const docIds = Array.from({ length: 10 }, (_, i) => `d${i + 1}`);
  const scores = docIds.map((_, i) => 10 - i);
  return {
    name: "fixed",
    retrieve: (qids, depth) =>
      Promise.resolve(
        new Map(
          qids.map((q) => [q, { docIds: docIds.slice(0, depth), scores: scores.slice(0, depth) }]),
        ) as Run,
      ),
    score: (_q, d) => (d === "p" ? posScore : 10 - (Number(d.slice(1)) - 1)),
  };
}

const QRELS: Qrels = new Map([
  // d3 is relevant too (a second positive, never a negative); d5 is judged non-relevant.
  ["q1", new Map([["p", 1], ["d3", 1], ["d5", 0]])],
  ["q2", new Map([["x", 0]])], // no positive: not mined
]);
const SET = { queries: new Map([["q1", "one"], ["q2", "two"]]), qrels: QRELS };

Deno.test("mining takes the rank window minus judged-relevant documents, best-ranked first", async () => {
  const { tuples, stats } = await mineHardNegatives(fixedRetriever(5), SET, {
    ranks: [2, 8],
    negatives: 4,
  });
  deepStrictEqual(
    tuples,
    [
      { qid: "q1", pos: "p", negs: ["d2", "d4", "d5", "d6"], scorePos: 5, scoresNeg: [9, 7, 6, 5] },
      {
        qid: "q1",
        pos: "d3",
        negs: ["d2", "d4", "d5", "d6"],
        scorePos: 8,
        scoresNeg: [9, 7, 6, 5],
      },
    ] satisfies MinedTuple[],
  );
  deepStrictEqual(stats, {
    pairs: 2,
    queries: 1,
    negatives: 8,
    judgedRelevant: 1,
    filtered: 0,
    short: 0,
  });
});

Deno.test("the false-negative filters drop candidates scoring near or above the positive", async () => {
  // Positive scores 6: ratio 0.9 keeps scores <= 5.4 (d6..); margin 2 keeps scores <= 4 (d7..).
  const ratio = await mineHardNegatives(fixedRetriever(6), SET, {
    ranks: [1, 10],
    negatives: 3,
    filter: { kind: "ratio", ratio: 0.9 },
  });
  deepStrictEqual(ratio.tuples[0].negs, ["d6", "d7", "d8"]);
  // p: d1, d2, d4, d5 above 5.4; d3 (scoring 8): d1, d2 above 7.2.
  deepStrictEqual(ratio.tuples[1].negs, ["d4", "d5", "d6"]);
  deepStrictEqual(ratio.stats.filtered, 6);
  const margin = await mineHardNegatives(fixedRetriever(6), SET, {
    ranks: [1, 10],
    negatives: 5,
    filter: { kind: "margin", margin: 2 },
  });
  deepStrictEqual(margin.tuples[0].negs, ["d7", "d8", "d9", "d10"]);
  deepStrictEqual(margin.tuples[1].negs, ["d5", "d6", "d7", "d8", "d9"]);
  deepStrictEqual(margin.stats.short, 1, "p: 4 left for 5 asked");
});

Deno.test("random sampling is seeded, in rank order, and drawn from the whole window", async () => {
  const draw = (seed: number) =>
    mineHardNegatives(fixedRetriever(0), SET, {
      ranks: [1, 10],
      negatives: 3,
      sample: "random",
      seed,
    }).then((r) => r.tuples[0].negs);
  const a = await draw(1);
  deepStrictEqual(await draw(1), a);
  const seen = new Set<string>();
  for (let s = 1; s <= 20; s++) for (const d of await draw(s)) seen.add(d);
  ok(seen.size >= 8, `20 draws of 3 from 9 candidates cover most of them (${seen.size})`);
  const ranks = a.map((d) => Number(d.slice(1)));
  deepStrictEqual(ranks, [...ranks].sort((x, y) => x - y));
});

Deno.test("mined files are read by the trainer as negatives (triples and tuples) and as teacher scores", async () => {
  await withTempDir(async (dir) => {
    const corpus: Doc[] = ["p", ...Array.from({ length: 10 }, (_, i) => `d${i + 1}`)].map((id) => ({
      id,
      title: "",
      text: `text of ${id}`,
    }));
    const { tuples } = await mineHardNegatives(fixedRetriever(5), SET, {
      ranks: [1, 4],
      negatives: 2,
    });
    for (const format of ["triples", "tuples"] as const) {
      const path = `${dir}/${format}.jsonl`;
      await writeMined(path, tuples, format);
      const { triples } = await beirTriples(corpus, SET, {
        negatives: { kind: "file", path },
        seed: 1,
      });
      deepStrictEqual(
        triples.map((t) => [t.qid, t.posId, t.negId, t.negative]),
        [
          ["q1", "p", "d1", "text of d1"],
          ["q1", "p", "d2", "text of d2"],
          ["q1", "d3", "d1", "text of d1"],
          ["q1", "d3", "d2", "text of d2"],
        ],
        format,
      );
    }
    const teacher = await readTeacherScores(`${dir}/triples.jsonl`);
    const row = teacher.get("q1", "p", "d2")!;
    deepStrictEqual([row.scorePos, row.scoreNeg], [5, 9]);
  });
});

Deno.test("BM25 and dense retrievers give positives' scores whether or not they were retrieved", async () => {
  const corpus: Doc[] = [
    { id: "a", title: "", text: "cell cycle" },
    { id: "b", title: "", text: "cell" },
    { id: "c", title: "", text: "dog" },
  ];
  const queries = new Map([["q", "cell cycle"]]);
  const r = bm25Retriever(Bm25Index.build(corpus), queries);
  const run = await r.retrieve(["q"], 1);
  deepStrictEqual(run.get("q")!.docIds, ["a"]);
  ok(r.score("q", "b") > 0 && r.score("q", "b") < run.get("q")!.scores[0]);
  deepStrictEqual(r.score("q", "c"), 0);

  // Dense: the cosine of USE-lite embeddings, computed here from encodeTexts directly.
  const g = await gpu();
  const model = await loadEncoder(g, "use-lite");
  const d = await denseRetriever(g, model, corpus, queries, { cacheDir: null });
  const q = (await encodeTexts(g, model, ["cell cycle"], { role: "query" })).data;
  const docs = await encodeTexts(g, model, corpus.map((c) => c.text), { role: "document" });
  const cos = corpus.map((_, j) => {
    const row = docs.data.subarray(j * 512, (j + 1) * 512);
    let s = 0, nq = 0, nd = 0;
    for (let k = 0; k < 512; k++) {
      [s, nq, nd] = [s + q[k] * row[k], nq + q[k] ** 2, nd + row[k] ** 2];
    }
    return s / Math.sqrt(nq * nd);
  });
  const top = (await d.retrieve(["q"], 3)).get("q")!;
  const want = [0, 1, 2].sort((x, y) => cos[y] - cos[x]);
  deepStrictEqual(top.docIds, want.map((j) => corpus[j].id));
  // f32 dot products of unit vectors of width 512: ~1e-6.
  assertClose(Float64Array.from(top.scores), Float64Array.from(want.map((j) => cos[j])), {
    atol: 1e-5,
    rtol: 0,
  }, "run");
  assertClose(
    Float64Array.of(d.score("q", "c")),
    Float64Array.of(cos[2]),
    { atol: 1e-5, rtol: 0 },
    "score",
  );
});

Deno.test("deno task mine: BM25 end to end on a tiny BEIR directory, and its flag checks", async () => {
  await withTempDir(async (dir) => {
    const data = await tinyBeir(`${dir}/beir`);
    const ok1 = await runScript(
      "mine",
      "--data",
      data,
      "--out",
      `${dir}/n.jsonl`,
      "--ranks",
      "1-8",
      "--negatives",
      "2",
      "--quiet",
    );
    deepStrictEqual(ok1.code, 0, ok1.stderr);
    const summary = JSON.parse(ok1.stdout);
    deepStrictEqual([summary.pairs, summary.queries], [4, 4]);
    const lines = (await Deno.readTextFile(`${dir}/n.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    deepStrictEqual(lines.length, summary.negatives);
    for (const l of lines) ok(l.neg !== l.pos && typeof l.score_neg === "number");
    for (
      const [args, pattern] of [
        [
          ["--margin", "1", "--max-score-ratio", "0.9"],
          /at most one of --max-score-ratio and --margin/,
        ],
        [["--ranks", "10-5"], /--ranks must be FROM-TO/],
        [["--format", "csv"], /--format must be triples or tuples/],
        [["--pooling", "cls"], /--pooling applies only with --model/],
      ] as [string[], RegExp][]
    ) {
      const bad = await runScript("mine", "--data", data, "--out", `${dir}/x.jsonl`, ...args);
      deepStrictEqual(bad.code, 2, bad.stderr);
      ok(pattern.test(bad.stderr), bad.stderr);
      ok(!bad.stderr.includes("    at "), "one line, no stack");
    }
  });
});

// Training data: triples from qrels (one per relevant pair), BM25 and random negatives that never
// hit a positive, negatives and teacher files with errors naming file and line, the validation
// split carved from train only, and determinism under a seed.
import { deepStrictEqual, notDeepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import type { Doc, Qrels } from "../src/data/types.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { readTeacherScores } from "../src/losses/margin_mse.ts";
import {
  beirTriples,
  loadBeirTraining,
  missingPositivesWarning,
  msmarcoTriples,
  positivePairs,
  splitValidation,
  teacherScoresFor,
  teacherTriples,
  tripleFingerprint,
} from "../src/train/data.ts";
import { readBeirQrels } from "../src/data/beir.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

const WORDS = ["cell", "protein", "virus", "gene", "brain", "heart", "blood", "drug", "mouse"];
const CORPUS: Doc[] = Array.from({ length: 30 }, (_, i) => ({
  id: `d${i}`,
  title: `title ${WORDS[i % WORDS.length]}`,
  text: `${WORDS[i % WORDS.length]} ${WORDS[(i * 7 + 3) % WORDS.length]} study ${i}`,
}));
const QUERIES = new Map(
  Array.from({ length: 6 }, (_, i) => [`q${i}`, `${WORDS[i]} ${WORDS[(i + 2) % WORDS.length]}`]),
);
// q0 has two positives and a judged non-relevant document; q5 has no positive.
const QRELS: Qrels = new Map([
  ["q0", new Map([["d0", 1], ["d9", 2], ["d18", 0]])],
  ["q1", new Map([["d1", 1]])],
  ["q2", new Map([["d2", 1], ["d11", 1]])],
  ["q3", new Map([["d3", 1]])],
  ["q4", new Map([["d4", 1]])],
  ["q5", new Map([["d5", 0]])],
]);
const SET = { queries: QUERIES, qrels: QRELS };

async function tempFile(text: string, suffix = ".tsv"): Promise<string> {
  const path = await Deno.makeTempFile({ suffix });
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("one triple per relevant (query, document) pair; BM25 negatives are never positives", async () => {
  const bm25 = Bm25Index.build(CORPUS);
  const { triples, stats } = await beirTriples(CORPUS, SET, {
    negatives: { kind: "bm25", depth: 10 },
    seed: 3,
    bm25,
  });
  const pairs = positivePairs(QRELS);
  deepStrictEqual(pairs.length, 7); // grade 0 pairs excluded
  deepStrictEqual(triples.map((t) => [t.qid, t.posId]), pairs);
  deepStrictEqual(stats.triples, 7);
  const byId = new Map(CORPUS.map((d) => [d.id, d]));
  for (const t of triples) {
    const positives = [...QRELS.get(t.qid!)!].filter(([, g]) => g > 0).map(([d]) => d);
    ok(!positives.includes(t.negId!), `negative ${t.negId} of ${t.qid} is a positive`);
    const top = bm25.search(QUERIES.get(t.qid!)!, 10).docIds;
    ok(top.includes(t.negId!), `negative ${t.negId} not in the BM25 top 10 of ${t.qid}`);
    deepStrictEqual(t.query, QUERIES.get(t.qid!));
    deepStrictEqual(t.positive, `${byId.get(t.posId!)!.title} ${byId.get(t.posId!)!.text}`);
  }
  // Deterministic under the seed; another seed draws other negatives somewhere.
  const again = await beirTriples(CORPUS, SET, { negatives: { kind: "bm25", depth: 10 }, seed: 3 });
  deepStrictEqual(again.triples, triples);
  const other = await Promise.all(
    [4, 5, 6].map((seed) =>
      beirTriples(CORPUS, SET, { negatives: { kind: "bm25", depth: 10 }, seed, bm25 })
    ),
  );
  ok(other.some((o) => tripleFingerprint(o.triples) !== tripleFingerprint(triples)));
});

Deno.test("random negatives exclude positives and follow the seed", async () => {
  const a = await beirTriples(CORPUS, SET, { negatives: { kind: "random" }, seed: 9 });
  const b = await beirTriples(CORPUS, SET, { negatives: { kind: "random" }, seed: 9 });
  deepStrictEqual(a.triples, b.triples);
  for (let seed = 0; seed < 20; seed++) {
    const { triples } = await beirTriples(CORPUS, SET, { negatives: { kind: "random" }, seed });
    for (const t of triples) {
      ok(QRELS.get(t.qid!)!.get(t.negId!) === undefined || t.negId === "d18");
    }
  }
});

Deno.test("a negatives file gives its triples; bad lines are errors with file and line", async () => {
  const good = await tempFile("q0\td0\td7\nq1 d1 d8\n\nq9\td1\td2\n");
  const { triples } = await beirTriples(CORPUS, SET, {
    negatives: { kind: "file", path: good },
    seed: 0,
  });
  // q9 is not a training query: skipped.
  deepStrictEqual(triples.map((t) => [t.qid, t.posId, t.negId]), [
    ["q0", "d0", "d7"],
    ["q1", "d1", "d8"],
  ]);
  const cases: [string, RegExp][] = [
    ["q0\td0\n", /:1: expected 3 fields/],
    ["q0\td0\td7\nq1\td1\tnope\n", /:2: unknown document 'nope'/],
    ["q0\td0\td9\n", /:1: negative 'd9' is judged relevant for query 'q0'/],
  ];
  for (const [text, re] of cases) {
    const path = await tempFile(text);
    await rejects(
      beirTriples(CORPUS, SET, { negatives: { kind: "file", path }, seed: 0 }),
      (e: Error) => e.message.startsWith(path) && re.test(e.message),
    );
  }
});

Deno.test("the validation split is carved from train queries with positives, disjoint and seeded", () => {
  const { train, validation } = splitValidation(SET, { count: 2, seed: 5 });
  deepStrictEqual(validation.qrels.size, 2);
  for (const q of validation.qrels.keys()) {
    ok(!train.qrels.has(q));
    ok(q !== "q5", "a query without positives cannot validate");
    deepStrictEqual(validation.queries.get(q), QUERIES.get(q));
  }
  deepStrictEqual(
    [...train.qrels.keys(), ...validation.qrels.keys()].sort(),
    [...QRELS.keys()].sort(),
  );
  deepStrictEqual(splitValidation(SET, { count: 2, seed: 5 }), { train, validation });
  deepStrictEqual(splitValidation(SET, { fraction: 0.4, seed: 1 }).validation.qrels.size, 2);
  throws(() => splitValidation(SET, { count: 5, seed: 1 }), /leave none/);
  throws(() => splitValidation(SET, { count: 1, fraction: 0.5, seed: 1 }), /not both/);
});

Deno.test("SciFact: validation queries come from train qrels only, never from test", async () => {
  const dir = `${DATA}/scifact`;
  const a = await loadBeirTraining(dir, { count: 40 }, 11);
  const b = await loadBeirTraining(dir, { count: 40 }, 11);
  const trainQrels = await readBeirQrels(`${dir}/qrels/train.tsv`);
  const testQrels = await readBeirQrels(`${dir}/qrels/test.tsv`);
  deepStrictEqual([...a.validation!.qrels.keys()], [...b.validation!.qrels.keys()]);
  deepStrictEqual(a.validation!.qrels.size, 40);
  for (const q of a.validation!.qrels.keys()) {
    ok(trainQrels.has(q), `${q} is not a train query`);
    ok(!testQrels.has(q), `${q} is a test query`);
    ok(!a.train.qrels.has(q));
  }
  deepStrictEqual(a.train.qrels.size + 40, trainQrels.size);
  const c = await loadBeirTraining(dir, { count: 40 }, 12);
  notDeepStrictEqual([...c.validation!.qrels.keys()], [...a.validation!.qrels.keys()]);
});

Deno.test("teacher scores: the MS MARCO TSV and the JSONL form read alike", async () => {
  const tsv = await tempFile("9.5\t3.25\tq0\td0\td7\n8 -1.5 q1 d1 d8\n9.5\t3.25\tq0\td0\td7\n");
  const jsonl = await tempFile(
    '{"qid": "q0", "pos": "d0", "neg": "d7", "score_pos": 9.5, "score_neg": 3.25}\n' +
      '{"qid": "q1", "pos": "d1", "neg": "d8", "score_pos": 8, "score_neg": -1.5}\n',
    ".jsonl",
  );
  const a = await readTeacherScores(tsv), b = await readTeacherScores(jsonl);
  const strip = (f: typeof a) => f.rows.map(({ lineNo: _, ...r }) => r);
  deepStrictEqual(strip(a), strip(b));
  deepStrictEqual(a.rows.length, 2); // the repeated identical line is kept once
  deepStrictEqual(a.get("q1", "d1", "d8")?.scoreNeg, -1.5);
  const { triples } = await beirTriples(CORPUS, SET, {
    negatives: { kind: "file", path: await tempFile("q0\td0\td7\nq1\td1\td8\n") },
    seed: 0,
  });
  const scores = teacherScoresFor(triples, a);
  deepStrictEqual([...scores.pos, ...scores.neg], [9.5, 8, 3.25, -1.5]);
  throws(
    () => teacherScoresFor([{ ...triples[0], negId: "d6" }], a),
    (e: Error) => e.message === `${tsv}: no teacher score for triple (q0, d0, d6)`,
  );
  // Triples defined by the teacher file itself.
  const docs = new Map(CORPUS.map((d) => [d.id, d.text]));
  const t = teacherTriples(a, QUERIES, docs, new Set(["q1"]));
  deepStrictEqual(t.triples.map((x) => x.negId), ["d7"]);
  deepStrictEqual([...t.pos], [9.5]);
});

Deno.test("teacher files: malformed lines are errors naming file and line", async () => {
  const cases: [string, string, RegExp][] = [
    ["1\t2\tq0\td0\n", ".tsv", /:1: expected 5 fields/],
    ["1\t2\tq0\td0\td1\nx\t2\tq0\td0\td2\n", ".tsv", /:2: score_pos 'x' is not a finite number/],
    [
      "1\t2\tq0\td0\td1\n3\t2\tq0\td0\td1\n",
      ".tsv",
      /:2: triple \(q0, d0, d1\) scored differently on line 1/,
    ],
    [
      '{"qid": "q0", "pos": "d0", "neg": "d1", "score_pos": 1}\n',
      ".jsonl",
      /:1: missing "score_neg"/,
    ],
    ['{"qid": "q0", "pos": "d0"\n', ".jsonl", /:1: invalid JSON/],
    [
      '{"qid": "", "pos": "d0", "neg": "d1", "score_pos": 1, "score_neg": 0}\n',
      ".jsonl",
      /:1: missing or empty "qid"/,
    ],
    ["\n\n", ".tsv", /no teacher scores/],
  ];
  for (const [text, suffix, re] of cases) {
    const path = await tempFile(text, suffix);
    await rejects(
      readTeacherScores(path),
      (e: Error) => e.message.startsWith(path) && re.test(e.message),
    );
  }
});

Deno.test("MS MARCO triples: texts as they are, ids resolved, unknown ids named with line", async () => {
  const texts = await tempFile("what is a cell\ta cell is\ta dog is\n");
  deepStrictEqual(await msmarcoTriples(texts), [
    { query: "what is a cell", positive: "a cell is", negative: "a dog is" },
  ]);
  const queries = await tempFile("1\twhat is a cell\n2\twhy\n");
  const collection = await tempFile("10\ta cell is\n11\ta dog is\n");
  const ids = await tempFile("1\t10\t11\n2\t11\t10\n");
  const t = await msmarcoTriples(ids, { queries, collection, exclude: new Set(["2"]) });
  deepStrictEqual(t, [{
    query: "what is a cell",
    positive: "a cell is",
    negative: "a dog is",
    qid: "1",
    posId: "10",
    negId: "11",
  }]);
  const bad = await tempFile("1\t10\t11\n1\t10\t99\n");
  await rejects(
    msmarcoTriples(bad, { queries, collection }),
    new RegExp(`${bad}:2: unknown passage '99'`),
  );
  // The file's line, not the triple's number: before, a blank line made this ':2:'.
  const blank = await tempFile("1\t10\t11\n\n9\t10\t11\n");
  await rejects(
    msmarcoTriples(blank, { queries, collection }),
    new RegExp(`^DataFormatError: ${blank}:3: unknown query '9'`),
  );
  const blank2 = await tempFile("\n\n1\t10\t11\n1\t12\t11\n");
  await rejects(
    msmarcoTriples(blank2, { queries, collection }),
    new RegExp(`^DataFormatError: ${blank2}:4: unknown passage '12'`),
  );
});

Deno.test("relevant documents missing from the corpus are counted, with the queries they empty", async () => {
  // q1's only positive and one of q2's two are not in the corpus.
  const corpus = CORPUS.filter((d) => d.id !== "d1" && d.id !== "d11");
  for (const negatives of [{ kind: "bm25", depth: 10 }, { kind: "random" }] as const) {
    const { triples, stats } = await beirTriples(corpus, SET, { negatives, seed: 3 });
    deepStrictEqual(triples.map((t) => [t.qid, t.posId]), [
      ["q0", "d0"],
      ["q0", "d9"],
      ["q2", "d2"],
      ["q3", "d3"],
      ["q4", "d4"],
    ]);
    deepStrictEqual(
      [stats.missingDocs, stats.queriesWithoutPositives, stats.missingDocExamples],
      [2, 1, ["d1", "d11"]],
    );
    deepStrictEqual(
      missingPositivesWarning(stats),
      "2 relevant train documents are not in the corpus (d1, d11): their pairs were dropped, " +
        "leaving 1 train query without any positive",
    );
  }
  const { stats } = await beirTriples(CORPUS, SET, { negatives: { kind: "random" }, seed: 3 });
  deepStrictEqual([stats.missingDocs, stats.queriesWithoutPositives], [0, 0]);
  deepStrictEqual(missingPositivesWarning(stats), null);
});

Deno.test("several negatives per positive: consecutive, distinct, never positive, BM25 first", async () => {
  const bm25 = Bm25Index.build(CORPUS);
  const k = 4;
  const { triples, stats } = await beirTriples(CORPUS, SET, {
    negatives: { kind: "bm25", depth: 10 },
    seed: 3,
    bm25,
    negativesPerPositive: k,
  });
  const pairs = positivePairs(QRELS);
  deepStrictEqual(triples.length, pairs.length * k);
  deepStrictEqual(stats.triples, pairs.length * k);
  pairs.forEach(([qid, posId], i) => {
    const group = triples.slice(i * k, (i + 1) * k);
    ok(group.every((t) => t.qid === qid && t.posId === posId), `pair ${i} is not consecutive`);
    const negs = group.map((t) => t.negId!);
    deepStrictEqual(new Set(negs).size, k, `repeated negatives for ${qid}/${posId}: ${negs}`);
    const positives = [...QRELS.get(qid)!].filter(([, g]) => g > 0).map(([d]) => d);
    const top = bm25.search(QUERIES.get(qid)!, 10).docIds.filter((d) => !positives.includes(d));
    for (const n of negs) ok(!positives.includes(n), `${n} is a positive of ${qid}`);
    // Drawn from the BM25 candidates while they last.
    ok(negs.slice(0, Math.min(k, top.length)).every((n) => top.includes(n)), `${qid}: ${negs}`);
  });
  // One per positive is exactly the default draw; a file source takes no count.
  const one = await beirTriples(CORPUS, SET, {
    negatives: { kind: "bm25", depth: 10 },
    seed: 3,
    bm25,
    negativesPerPositive: 1,
  });
  const plain = await beirTriples(CORPUS, SET, {
    negatives: { kind: "bm25", depth: 10 },
    seed: 3,
    bm25,
  });
  deepStrictEqual(one.triples, plain.triples);
  // More negatives than BM25 candidates: topped up with distinct random documents.
  const many = await beirTriples(CORPUS, SET, {
    negatives: { kind: "bm25", depth: 3 },
    seed: 3,
    bm25,
    negativesPerPositive: 6,
  });
  ok(many.stats.randomFallbacks > 0);
  for (let i = 0; i < many.triples.length; i += 6) {
    deepStrictEqual(new Set(many.triples.slice(i, i + 6).map((t) => t.negId)).size, 6);
  }
  await rejects(
    () =>
      beirTriples(CORPUS, SET, { negatives: { kind: "random" }, seed: 1, negativesPerPositive: 0 }),
    /negativesPerPositive must be a positive integer/,
  );
  await rejects(
    () =>
      beirTriples(CORPUS, SET, {
        negatives: { kind: "file", path: "x" },
        seed: 1,
        negativesPerPositive: 2,
      }),
    /not a file/,
  );
});

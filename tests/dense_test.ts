// Exact dense retrieval (src/eval/dense.ts): GPU retrieval against brute-force CPU scoring,
// chunk and block boundaries, re-ranking, the embedding cache, and `deno task eval --model`.
//
// Tolerance: GPU scores are float32 dot products of unit vectors (D = 64 terms, |terms| <= 1),
// so their error against float64 is a few ulps of 1 (~1e-7); 1e-5 leaves ample room. Two
// documents whose exact scores differ by less than that may swap, so ranks are compared
// exactly only with integer embeddings (exact in float32), and up to near-ties otherwise.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readTrecRun } from "../src/data/trec.ts";
import type { Run } from "../src/data/types.ts";
import {
  cacheEntryName,
  denseRetrieve,
  type EmbeddingCacheKey,
  type EmbeddingMatrix,
  encodeCached,
  hashTexts,
  normalizeRows,
  readEmbeddingCache,
  rerank,
  rerankWithEmbeddings,
  type RetrieveOptions,
  retrieveWithEmbeddings,
  tokenizerIdentity,
  writeEmbeddingCache,
} from "../src/eval/dense.ts";
import { loadEncoder } from "../src/models/load.ts";
import { loadHfTokenizer } from "../src/text/tokenizer.ts";
import { UseTokenizer } from "../src/text/use_tokenizer.ts";
import { assertBitEqual, gpu, randn, rng } from "./helpers.ts";

function matrix(count: number, dim: number, data: Float32Array): EmbeddingMatrix {
  return { count, dim, data };
}

/** Float64 scores of every (query, doc) pair: [Q, N]. */
function bruteScores(q: EmbeddingMatrix, c: EmbeddingMatrix): Float64Array {
  const out = new Float64Array(q.count * c.count);
  for (let i = 0; i < q.count; i++) {
    for (let j = 0; j < c.count; j++) {
      let s = 0;
      for (let d = 0; d < q.dim; d++) s += q.data[i * q.dim + d] * c.data[j * q.dim + d];
      out[i * c.count + j] = s;
    }
  }
  return out;
}

/** Brute-force top k of each row: (score desc, index asc). */
function bruteTopk(scores: Float64Array, Q: number, N: number, k: number): number[][] {
  return [...Array(Q).keys()].map((i) =>
    [...Array(N).keys()].sort((a, b) => scores[i * N + b] - scores[i * N + a] || a - b)
      .slice(0, Math.min(k, N))
  );
}

/** Retrieval equals brute force: exact ranks when `exact`, else up to near-ties (1e-5). */
async function checkRetrieval(
  q: EmbeddingMatrix,
  c: EmbeddingMatrix,
  k: number,
  opts: RetrieveOptions,
  exact: boolean,
) {
  const g = await gpu();
  const got = await retrieveWithEmbeddings(g, q, c, k, opts);
  const N = c.count;
  const scores = bruteScores(q, c);
  const want = bruteTopk(scores, q.count, N, k);
  strictEqual(got.k, Math.min(k, N));
  for (let i = 0; i < q.count; i++) {
    const ids = [...got.indices.subarray(i * got.k, (i + 1) * got.k)];
    if (exact) deepStrictEqual(ids, want[i], `query ${i}`);
    strictEqual(new Set(ids).size, ids.length, `query ${i}: duplicate documents`);
    for (let j = 0; j < got.k; j++) {
      const own = scores[i * N + ids[j]];
      // The score returned is the pair's score, and the pair belongs at this rank.
      ok(Math.abs(got.scores[i * got.k + j] - own) <= 1e-5, `query ${i} rank ${j} score`);
      ok(Math.abs(own - scores[i * N + want[i][j]]) <= 1e-5, `query ${i} rank ${j} document`);
    }
  }
}

function unitRows(count: number, dim: number, seed: number): EmbeddingMatrix {
  return normalizeRows(matrix(count, dim, randn(count * dim, seed)));
}

/** Small integer embeddings: dot products are exact in float32, with many ties. */
function intRows(count: number, dim: number, seed: number): EmbeddingMatrix {
  const u = rng(seed);
  return matrix(count, dim, new Float32Array(count * dim).map(() => Math.floor(u() * 5) - 2));
}

Deno.test("dense retrieval equals brute-force CPU scoring (top-k, scores to 1e-5)", async () => {
  await checkRetrieval(unitRows(37, 64, 1), unitRows(1500, 64, 2), 100, {}, false);
  await checkRetrieval(unitRows(5, 48, 3), unitRows(800, 48, 4), 10, {}, false);
});

Deno.test("dense retrieval ranks ties by the lower document index (exact integer scores)", async () => {
  await checkRetrieval(intRows(9, 8, 5), intRows(700, 8, 6), 50, { chunkSize: 96 }, true);
});

Deno.test("dense retrieval across chunk and block boundaries", async () => {
  const q = intRows(23, 12, 7);
  const c = intRows(1003, 12, 8);
  // N not a multiple of the chunk (1003 = 10 x 100 + 3), k above the chunk size.
  await checkRetrieval(q, c, 250, { chunkSize: 100 }, true);
  // A chunk size not a multiple of 4 (padded), and query blocks of 2 rows (score budget).
  await checkRetrieval(q, c, 17, { chunkSize: 101, scoreBudget: 2 * 104 * 4 }, true);
  // k above N: every document, ranked.
  await checkRetrieval(q, intRows(37, 12, 9), 50, { chunkSize: 16 }, true);
  // D not a multiple of 4 (naive matmul) and one document.
  await checkRetrieval(intRows(3, 5, 10), intRows(1, 5, 11), 3, {}, true);
});

Deno.test("rerankWithEmbeddings equals brute force on the candidates", () => {
  const q = unitRows(6, 32, 12), c = unitRows(200, 32, 13);
  const scores = bruteScores(q, c);
  const u = rng(14);
  const candidates: Run = new Map();
  for (let i = 0; i < 6; i++) {
    const ids = [...new Set([...Array(30)].map(() => Math.floor(u() * 200)))];
    candidates.set(`q${i}`, { docIds: ids.map((j) => `d${j}`), scores: ids.map(() => u()) });
  }
  candidates.set("unknown-query", { docIds: ["d1"], scores: [1] });
  const qRow = new Map([...Array(6).keys()].map((i) => [`q${i}`, i]));
  const dRow = new Map([...Array(200).keys()].map((j) => [`d${j}`, j]));
  const run = rerankWithEmbeddings(q, qRow, c, dRow, candidates);
  strictEqual(run.size, 6);
  for (let i = 0; i < 6; i++) {
    const r = run.get(`q${i}`)!;
    deepStrictEqual(r.docIds, candidates.get(`q${i}`)!.docIds);
    r.docIds.forEach((id, j) => {
      ok(Math.abs(r.scores[j] - scores[i * 200 + dRow.get(id)!]) <= 1e-6, `${id}`);
    });
  }
  // depth keeps each query's best candidates by the candidate score.
  const top5 = rerankWithEmbeddings(q, qRow, c, dRow, candidates, 5);
  const c0 = candidates.get("q0")!;
  const best = c0.docIds.map((id, j) => [id, c0.scores[j]] as const)
    .sort((a, b) => b[1] - a[1]).slice(0, 5).map((x) => x[0]);
  deepStrictEqual(top5.get("q0")!.docIds, best);
});

Deno.test("embedding cache: round trip, misses on other texts or model, bad files ignored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "selfmargin-cache-" });
  try {
    const emb = matrix(3, 4, randn(12, 15));
    const key: EmbeddingCacheKey = {
      model: "m1",
      tokenizer: "t1",
      encoder: "e1",
      maxLength: 128,
      textsHash: await hashTexts(["a", "b", "c"]),
      count: 3,
    };
    await writeEmbeddingCache(dir, key, emb);
    const back = await readEmbeddingCache(dir, key);
    assertBitEqual(back?.data, emb.data, "cached embeddings");
    strictEqual(back?.dim, 4);
    // Text boundaries matter: ["a", "b", "c"] and ["ab", "c"] hash differently.
    ok((await hashTexts(["ab", "c"])) !== key.textsHash);
    ok((await hashTexts(["a", "b", "d"])) !== key.textsHash);
    for (
      const other of [
        { model: "m2" },
        { tokenizer: "t2" },
        { encoder: "e2" },
        { maxLength: 64 },
        { textsHash: "x" },
      ]
    ) {
      ok((await cacheEntryName({ ...key, ...other })) !== (await cacheEntryName(key)));
      strictEqual(await readEmbeddingCache(dir, { ...key, ...other }), null);
    }
    // A truncated data file is ignored with a note.
    const stem = `${dir}/${await cacheEntryName(key)}`;
    await Deno.writeFile(`${stem}.f32`, new Uint8Array(7));
    const notes: string[] = [];
    strictEqual(await readEmbeddingCache(dir, key, (m) => notes.push(m)), null);
    ok(notes[0].includes("7 bytes, expected 48"), notes[0]);
    // A header that names other texts (a hand-edited or colliding file) is ignored too.
    await writeEmbeddingCache(dir, key, emb);
    const header = JSON.parse(await Deno.readTextFile(`${stem}.json`));
    await Deno.writeTextFile(`${stem}.json`, JSON.stringify({ ...header, textsHash: "y" }));
    strictEqual(await readEmbeddingCache(dir, key, (m) => notes.push(m)), null);
    ok(notes[1].includes("texts does not match"), notes[1]);
    await Deno.writeTextFile(`${stem}.json`, "{not json");
    strictEqual(await readEmbeddingCache(dir, key, (m) => notes.push(m)), null);
    ok(notes[2].startsWith("ignoring embedding cache"), notes[2]);
    // No temporary files are left behind.
    for await (const e of Deno.readDir(dir)) ok(!e.name.includes(".tmp-"), e.name);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer identity: the tokenizer files' content, not the object", async () => {
  const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
  const src = `${dataDir}/../models/minilm-l6-tokenizer`;
  const dir = await Deno.makeTempDir({ prefix: "selfmargin-tok-" });
  try {
    const json = JSON.parse(await Deno.readTextFile(`${src}/tokenizer.json`));
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
    await Deno.copyFile(`${src}/tokenizer_config.json`, `${dir}/tokenizer_config.json`);
    const a = await tokenizerIdentity(await loadHfTokenizer(src));
    ok(a !== null);
    // The same content (a copy, re-serialised): the same identity.
    strictEqual(await tokenizerIdentity(await loadHfTokenizer(dir)), a);
    // Lower-casing switched off: another tokenizer, another identity.
    json.normalizer.lowercase = !json.normalizer.lowercase;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
    ok((await tokenizerIdentity(await loadHfTokenizer(dir))) !== a);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeCached, denseRetrieve and rerank with use-lite agree", async () => {
  const g = await gpu();
  const model = await loadEncoder(g, "use-lite");
  const dir = await Deno.makeTempDir({ prefix: "selfmargin-cache-" });
  try {
    const texts = ["cats purr", "dogs bark loudly", "interest rates rose"];
    const first = await encodeCached(g, model, texts, { cacheDir: dir });
    strictEqual(first.cached, false);
    const again = await encodeCached(g, model, texts, { cacheDir: dir });
    strictEqual(again.cached, true);
    assertBitEqual(again.data, first.data, "embeddings again");
    // Other texts, another max length, or another model identity: encoded anew.
    strictEqual((await encodeCached(g, model, texts.slice(1), { cacheDir: dir })).cached, false);
    strictEqual(
      (await encodeCached(g, model, texts, { cacheDir: dir, maxLength: 4 })).cached,
      false,
    );
    strictEqual(
      (await encodeCached(g, model, texts, { cacheDir: dir, modelId: "other" })).cached,
      false,
    );

    // Same weights, another tokenizer: not the cached embeddings (before, the key left the
    // tokenizer out and the stale entry was reused). Here "cats" becomes another piece's id.
    const tok = model.tokenizer as UseTokenizer;
    const [a] = tok.ids("cats");
    const b = (a + 1000) % tok.vocab.length;
    const vocab = tok.vocab.slice();
    [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
    const swapped = { ...model, tokenizer: new UseTokenizer(vocab) };
    const other = await encodeCached(g, swapped, texts, { cacheDir: dir });
    strictEqual(other.cached, false);
    ok(other.data.some((v, i) => v !== first.data[i]), "another tokenizer, other embeddings");
    strictEqual((await encodeCached(g, swapped, texts, { cacheDir: dir })).cached, true);
    strictEqual((await encodeCached(g, model, texts, { cacheDir: dir })).cached, true);
    // Same weights and tokenizer, another pooling: encoded anew as well.
    const meanless = { ...model, config: { ...model.config, normalize: false } };
    strictEqual((await encodeCached(g, meanless, texts, { cacheDir: dir })).cached, false);
    // A tokenizer without an identity bypasses the cache rather than risk a stale entry.
    const anonymous = { ...model, tokenizer: { padId: 0, encode: tok.encode.bind(tok) } };
    const notes: string[] = [];
    const log = (m: string) => notes.push(m);
    strictEqual((await encodeCached(g, anonymous, texts, { cacheDir: dir, log })).cached, false);
    strictEqual((await encodeCached(g, anonymous, texts, { cacheDir: dir, log })).cached, false);
    ok(notes.some((m) => m.includes("cache is not used")), notes.join("\n"));

    const corpus = texts.map((text, i) => ({ id: `d${i}`, title: i === 1 ? "Dogs" : "", text }));
    const queries = new Map([["q0", "why do cats purr"], ["q1", "loans and rates"]]);
    const run = await denseRetrieve(g, model, { corpus, queries, k: 2, cacheDir: dir });
    strictEqual(run.get("q0")!.docIds[0], "d0");
    strictEqual(run.get("q1")!.docIds[0], "d2");
    // Re-ranking every document gives the same scores as retrieval, pair by pair.
    const all = new Map([...queries.keys()].map((q) => [q, {
      docIds: corpus.map((d) => d.id),
      scores: [0, 0, 0],
    }]));
    const rr = await rerank(g, model, { corpus, queries, candidates: all, cacheDir: dir });
    for (const [qid, r] of run) {
      const other = rr.get(qid)!;
      r.docIds.forEach((id, j) => {
        const s = other.scores[other.docIds.indexOf(id)];
        ok(Math.abs(s - r.scores[j]) <= 1e-5, `${qid} ${id}: ${s} vs ${r.scores[j]}`);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function eval_(...args: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/eval.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

Deno.test("deno task eval --model use-lite on a tiny BEIR corpus: run, scores, cache, rerank", async () => {
  const dir = await Deno.makeTempDir({ prefix: "selfmargin-beir-" });
  try {
    const docs = [
      ["d1", "Cats", "Cats purr when they are happy and sleep a lot."],
      ["d2", "Dogs", "Dogs bark at strangers and love to play fetch."],
      ["d3", "", "The stock market fell sharply after interest rates rose."],
      ["d4", "Volcanoes", "Lava flows from erupting volcanoes can destroy villages."],
      ["d5", "Bread", "Bake the bread at 220 degrees for thirty minutes."],
    ];
    await Deno.writeTextFile(
      `${dir}/corpus.jsonl`,
      docs.map(([id, title, text]) => JSON.stringify({ _id: id, title, text })).join("\n"),
    );
    const qs = [["q1", "why do cats purr"], ["q2", "stock prices and interest rates"], [
      "q3",
      "how long to bake bread",
    ]];
    await Deno.writeTextFile(
      `${dir}/queries.jsonl`,
      qs.map(([id, text]) => JSON.stringify({ _id: id, text })).join("\n"),
    );
    await Deno.mkdir(`${dir}/qrels`);
    await Deno.writeTextFile(
      `${dir}/qrels/test.tsv`,
      "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td5\t2\n",
    );
    const cache = `${dir}/cache`;
    const base = ["--model", "use-lite", "--data", dir, "--split", "test", "--cache-dir", cache];
    const r = await eval_(...base, "--k", "4", "--out", `${dir}/run.txt`, "--json");
    strictEqual(r.code, 0, r.err);
    const m = JSON.parse(r.out);
    strictEqual(m.num_q, 3);
    strictEqual(m.num_ret, 12);
    strictEqual(m.recip_rank, 1); // each query's relevant document ranks first
    const { run } = await readTrecRun(`${dir}/run.txt`);
    deepStrictEqual([...run.keys()].sort(), ["q1", "q2", "q3"]);
    strictEqual(run.get("q1")!.docIds.length, 4);
    // A second run reads the cache and prints the table.
    const again = await eval_(...base, "--k", "4");
    strictEqual(again.code, 0, again.err);
    ok(again.err.includes("embeddings from the cache"), again.err);
    ok(/^ndcg_cut_10\s+\tall\t1\.0000$/m.test(again.out), again.out);
    // Re-ranking the run's top 2 keeps those documents, with the same scores.
    const rr = await eval_(
      ...base,
      "--rerank",
      `${dir}/run.txt`,
      "--k",
      "2",
      "--out",
      `${dir}/rr.txt`,
    );
    strictEqual(rr.code, 0, rr.err);
    const reranked = (await readTrecRun(`${dir}/rr.txt`)).run;
    for (const [qid, r0] of run) {
      const r1 = reranked.get(qid)!;
      strictEqual(r1.docIds.length, 2);
      r1.docIds.forEach((id, j) => {
        const i0 = r0.docIds.indexOf(id);
        ok(i0 >= 0 && i0 < 2, `${qid} ${id}`);
        ok(Math.abs(r0.scores[i0] - r1.scores[j]) <= 1e-5);
      });
    }
    // A missing dataset is a clear error.
    const bad = await eval_("--model", "use-lite", "--data", `${dir}/nope`);
    strictEqual(bad.code, 2);
    ok(bad.err.startsWith("eval: "), bad.err);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

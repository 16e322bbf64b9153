// BM25 baseline (wink-bm25-text-search + wink-nlp-utils, k1 0.9, b 0.4) on SciFact test:
// the figures measured before with this setup are nDCG@10 0.675 and Recall@100 0.922
// (Anserini publishes 0.665). Also its use as candidate generator and negative miner.
// Takes ~10-20 s on this machine (indexing 5,183 abstracts).

import { ok, strictEqual } from "node:assert/strict";
import { loadBeir } from "../src/data/beir.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { evaluate, formatMeasure } from "../src/eval/metrics.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

Deno.test("BM25 on SciFact test: nDCG@10 0.675, Recall@100 0.922; negatives exclude positives", async () => {
  const { corpus, queries, qrels } = await loadBeir(`${DATA}/scifact`, "test");
  const index = Bm25Index.build(corpus);
  const run = index.retrieve(queries, 1000);
  const { all } = evaluate(qrels, run);
  strictEqual(all.num_q, 300);
  // Reported to 3 decimals; measured here 0.67478 and 0.92200.
  strictEqual(all.ndcg_cut_10.toFixed(3), "0.675");
  strictEqual(all.recall_100.toFixed(3), "0.922");
  strictEqual(formatMeasure("ndcg_cut_10", all.ndcg_cut_10), "0.6748");
  // Candidate generation: at most k per query, in trec_eval order (scores non-increasing).
  for (const r of run.values()) {
    ok(r.docIds.length <= 1000);
    for (let i = 1; i < r.scores.length; i++) ok(r.scores[i - 1] >= r.scores[i]);
  }
  const top10 = index.retrieve(queries, 10);
  for (const [qid, r] of top10) {
    strictEqual(r.docIds.join(), run.get(qid)!.docIds.slice(0, 10).join(), `top 10 of ${qid}`);
  }
  // Negative mining: no judged-relevant document is ever returned as a negative.
  const negs = index.mineNegatives(queries, qrels, { count: 5, depth: 50 });
  strictEqual(negs.size, 300);
  for (const [qid, list] of negs) {
    ok(list.length <= 5);
    for (const d of list) ok(!((qrels.get(qid)!.get(d) ?? 0) >= 1), `${d} is relevant to ${qid}`);
  }
});

Deno.test("BM25 ranks by term overlap, stems, drops stop words, needs 3 documents", () => {
  const index = Bm25Index.build([
    { id: "cats", title: "Cats", text: "Cats are purring animals." },
    { id: "dogs", title: "", text: "Dogs bark at the mail carrier." },
    { id: "birds", title: "", text: "Birds sing in the morning." },
  ]);
  strictEqual(index.search("purring cat", 10).docIds[0], "cats");
  strictEqual(index.search("the at in", 10).docIds.length, 0); // only stop words
  strictEqual(index.search("barking", 0).docIds.length, 0);
  let threw = false;
  try {
    Bm25Index.build([{ id: "a", title: "", text: "x" }]);
  } catch {
    threw = true;
  }
  ok(threw);
});

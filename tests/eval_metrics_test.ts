// Hand-built cases for src/eval/metrics.ts: ties, unjudged documents, queries without
// relevant documents, graded relevance, queries missing on either side, -M, duplicates,
// MS MARCO MRR@10, and trec_eval's number formatting. Expected values are worked out by hand
// in the comments (nDCG: gain = grade, discount 1/log2(rank + 1)).

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { parseTrecQrels, parseTrecRun } from "../src/data/trec.ts";
import type { Qrels, Run } from "../src/data/types.ts";
import { evaluate, evaluateQuery, formatMeasure, msmarcoMrr10 } from "../src/eval/metrics.ts";
import { trecOrder } from "../src/data/order.ts";
import { mulberry32 } from "../src/eval/stats.ts";

const EPS = 1e-12; // exact arithmetic on a handful of terms; only rounding differences allowed

function near(got: number, want: number, what: string) {
  ok(Math.abs(got - want) <= EPS, `${what}: got ${got}, want ${want}`);
}

function qrels(obj: Record<string, Record<string, number>>): Qrels {
  return new Map(Object.entries(obj).map(([q, d]) => [q, new Map(Object.entries(d))]));
}

function run(obj: Record<string, [string, number][]>): Run {
  return new Map(
    Object.entries(obj).map((
      [q, list],
    ) => [q, { docIds: list.map((x) => x[0]), scores: list.map((x) => x[1]) }]),
  );
}

Deno.test("ties are broken by document id descending; the rank column is ignored", () => {
  const q = parseTrecQrels("q1 0 a 1\nq1 0 b 0\n");
  // Equal scores: order is c, b, a (descending ids), so the relevant 'a' is at rank 3 even
  // though the file lists it first with rank 1.
  const { run: r } = parseTrecRun("q1 Q0 a 1 5.0 x\nq1 Q0 b 2 5.0 x\nq1 Q0 c 3 5.0 x\n");
  const m = evaluate(q, r).all;
  near(m.recip_rank, 1 / 3, "recip_rank");
  // A higher score wins over the id order; -0 and 0 tie (as in C).
  const m2 = evaluateQuery(q.get("q1"), { docIds: ["a", "z"], scores: [-0, 0] });
  near(m2.recip_rank, 1 / 2, "-0 ties 0, then 'z' > 'a'");
  const m3 = evaluateQuery(q.get("q1"), { docIds: ["a", "z"], scores: [1e-300, 0] });
  near(m3.recip_rank, 1, "tiny score difference is not a tie");
});

Deno.test("ids compare by code point (UTF-8 byte order), not UTF-16 code unit", () => {
  // U+FF5E (3 UTF-8 bytes EF BD 9E) vs U+1F600 (4 bytes F0 9F 98 80): strcmp puts the emoji
  // last; JS '<' on code units would put it first (D83D < FF5E).
  const q = qrels({ q: { "\u{1F600}": 1 } });
  const m = evaluateQuery(q.get("q"), { docIds: ["\uFF5E", "\u{1F600}"], scores: [1, 1] });
  near(m.recip_rank, 1, "emoji id is the larger one, ranked first on a tie");
});

Deno.test("unjudged documents: absent ones are non-relevant, negative grades are not counted", () => {
  const q = qrels({ q: { a: 1, b: -1, c: 1 } });
  const m = evaluateQuery(q.get("q"), { docIds: ["x", "b", "a"], scores: [3, 2, 1] });
  strictEqual(m.num_rel, 2); // b (grade -1) is not relevant and not counted
  strictEqual(m.num_rel_ret, 1);
  near(m.recip_rank, 1 / 3, "recip_rank");
  near(m.P_5, 1 / 5, "P_5 divides by 5 though 3 were retrieved");
  near(m.recall_5, 1 / 2, "recall_5");
  near(m.map, (1 / 3) / 2, "map = (1/3) / num_rel");
  // DCG = 1/log2(4) = 0.5; ideal = 1 + 1/log2(3).
  near(m.ndcg_cut_10, 0.5 / (1 + 1 / Math.log2(3)), "ndcg_cut_10");
  near(m.ndcg, m.ndcg_cut_10, "ndcg (no cut) equals ndcg_cut_10 here");
  strictEqual(m.success_1, 0);
  strictEqual(m.success_5, 1);
});

Deno.test("a query with no relevant document scores 0 everywhere and still counts", () => {
  const q = qrels({ q1: { a: 0, b: 0 }, q2: { c: 1 } });
  const r = run({ q1: [["a", 2], ["b", 1]], q2: [["c", 1]] });
  const { perQuery, all } = evaluate(q, r);
  const m1 = perQuery.get("q1")!;
  for (const k of ["map", "recip_rank", "P_5", "recall_5", "ndcg", "ndcg_cut_10", "success_10"]) {
    strictEqual(m1[k], 0, k);
  }
  strictEqual(all.num_q, 2);
  near(all.map, 0.5, "map averages the 0 of q1 with the 1 of q2");
  near(all.recall_1000, 0.5, "recall_1000");
});

Deno.test("graded relevance: gain is the grade; the ideal uses all judged documents", () => {
  // Judged: a=2, b=1, c=0, d=3 (d never retrieved). Ranking a, c, b.
  const q = qrels({ q: { a: 2, b: 1, c: 0, d: 3 } });
  const r = { docIds: ["a", "c", "b"], scores: [3, 2, 1] };
  const m = evaluateQuery(q.get("q"), r);
  const dcg3 = 2 + 0 + 1 / Math.log2(4); // 2.5
  const ideal3 = 3 + 2 / Math.log2(3) + 1 / Math.log2(4);
  near(m.ndcg_cut_5, dcg3 / ideal3, "ndcg_cut_5");
  near(m.ndcg, dcg3 / ideal3, "ndcg");
  const m1 = evaluateQuery(q.get("q"), r, { cutoffs: { ndcg_cut: [1, 2] } });
  near(m1.ndcg_cut_1, 2 / 3, "ndcg_cut_1 = 2 / 3");
  near(m1.ndcg_cut_2, 2 / (3 + 2 / Math.log2(3)), "ndcg_cut_2");
  strictEqual(m.num_rel, 3);
  // -l 2: b (grade 1) is no longer relevant for P/map/num_rel, but nDCG gains are unchanged.
  const l2 = evaluateQuery(q.get("q"), r, { relevanceLevel: 2 });
  strictEqual(l2.num_rel, 2);
  strictEqual(l2.num_rel_ret, 1);
  near(l2.map, 1 / 2, "map with -l2: (1/1) / 2");
  near(l2.ndcg, m.ndcg, "ndcg ignores -l");
});

Deno.test("run queries absent from the qrels are ignored; qrels queries absent from the run", () => {
  const q = qrels({ q1: { a: 1 }, q2: { b: 1 } });
  const r = run({ q1: [["a", 1]], q9: [["zzz", 1]] });
  const plain = evaluate(q, r);
  deepStrictEqual([...plain.perQuery.keys()], ["q1"]);
  strictEqual(plain.all.num_q, 1);
  near(plain.all.map, 1, "averaged over q1 only");
  // -c: q2 counts as 0 and is listed; num_ret 0, num_rel from the qrels.
  const c = evaluate(q, r, { averageComplete: true });
  deepStrictEqual([...c.perQuery.keys()], ["q1", "q2"]);
  strictEqual(c.all.num_q, 2);
  near(c.all.map, 0.5, "map with -c");
  strictEqual(c.perQuery.get("q2")!.num_ret, 0);
  strictEqual(c.perQuery.get("q2")!.num_rel, 1);
  strictEqual(c.all.num_rel, 2);
  // No overlap at all: an error, as trec_eval ("No queries with both results and relevance").
  throws(() => evaluate(q, run({ q9: [["a", 1]] })), /no queries with both/);
});

Deno.test("-M keeps the first n documents of trec_eval's order", () => {
  const q = qrels({ q: { a: 1 } });
  const r = { docIds: ["a", "b", "c"], scores: [1, 3, 2] };
  strictEqual(evaluateQuery(q.get("q"), r, { maxDocsPerQuery: 2 }).recip_rank, 0);
  strictEqual(evaluateQuery(q.get("q"), r, { maxDocsPerQuery: 3 }).recip_rank, 1 / 3);
  strictEqual(evaluateQuery(q.get("q"), r, { maxDocsPerQuery: 2 }).num_ret, 2);
});

Deno.test("a document twice in one query is an error (within the -M top n, as trec_eval)", () => {
  const q = qrels({ q: { a: 1 } });
  const r = { docIds: ["a", "b", "a"], scores: [3, 2, 1] };
  throws(() => evaluateQuery(q.get("q"), r, {}, "q"), /duplicate document 'a' for query 'q'/);
  // trec_eval checks duplicates only among the documents it keeps.
  strictEqual(evaluateQuery(q.get("q"), r, { maxDocsPerQuery: 2 }).recip_rank, 1);
});

Deno.test("bad options are rejected", () => {
  const q = qrels({ q: { a: 1 } });
  const r = run({ q: [["a", 1]] });
  throws(() => evaluate(q, r, { cutoffs: { P: [0] } }), /positive integer/);
  throws(() => evaluate(q, r, { cutoffs: { P: [5, 5] } }), /twice/);
  throws(() => evaluate(q, r, { relevanceLevel: 1.5 }), /not an integer/);
});

Deno.test("MS MARCO MRR@10: top 10 only, divided by every qrels query", () => {
  const q = qrels({ q1: { a: 1 }, q2: { b: 1 }, q3: { c: 1 } });
  const ranks = (rel: string, at: number) =>
    Array.from(
      { length: 12 },
      (_, i) => [i + 1 === at ? rel : `x${i}`, 100 - i] as [string, number],
    );
  // q1: relevant at rank 2 -> 1/2; q2: at rank 11 -> 0; q3: not in the run -> 0.
  const r = run({ q1: ranks("a", 2), q2: ranks("b", 11), q9: ranks("zz", 1) });
  const { msmarco_mrr_10, perQuery } = msmarcoMrr10(q, r);
  near(msmarco_mrr_10, 0.5 / 3, "MRR@10");
  strictEqual(perQuery.get("q2"), 0);
  // trec_eval's recip_rank has no cutoff: q2 gets 1/11 there.
  near(evaluate(q, r).perQuery.get("q2")!.recip_rank, 1 / 11, "recip_rank has no cutoff");
  throws(() => msmarcoMrr10(q, run({ q9: [["a", 1]] })), /no matching query ids/);
});

Deno.test("formatMeasure prints like trec_eval's %.4f (ties to even) and integer counts", () => {
  strictEqual(formatMeasure("map", 1 / 3), "0.3333");
  strictEqual(formatMeasure("map", 0.03125), "0.0312"); // exact tie: printf rounds to even
  strictEqual(formatMeasure("map", 0.09375), "0.0938");
  strictEqual(formatMeasure("map", 0.15625), "0.1562");
  strictEqual(formatMeasure("P_5", 0.2), "0.2000");
  strictEqual(formatMeasure("num_rel", 561), "561");
});

Deno.test("trecOrder equals a plain comparator sort on random rankings with heavy ties", () => {
  const rand = mulberry32(5);
  const pick = [0, -0, 1, -1, 0.5, Infinity, -Infinity, 1e-300];
  for (let trial = 0; trial < 200; trial++) {
    const n = Math.floor(rand() * 300);
    const docIds = Array.from({ length: n }, (_, i) => `d${Math.floor(rand() * 1e4)}_${i}`);
    const scores = Array.from(
      { length: n },
      () => rand() < 0.5 ? pick[Math.floor(rand() * pick.length)] : Math.round(rand() * 20),
    );
    const want = docIds.map((_, i) => i).sort((a, b) =>
      scores[a] > scores[b] ? -1 : scores[a] < scores[b] ? 1 : docIds[a] < docIds[b] ? 1 : -1
    );
    deepStrictEqual([...trecOrder({ docIds, scores })], want);
  }
  throws(() => trecOrder({ docIds: ["a"], scores: [NaN] }), /NaN/);
});

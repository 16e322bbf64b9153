// Benchmark: trec_eval-exact evaluation of a 1M-line run (1,000 queries x 1,000 documents,
// 10 relevant per query, scores with ties), and parsing the same run from TREC text.
// Run: deno bench -A tests/eval_metrics_bench.ts

import { formatTrecRun, parseTrecRun } from "../src/data/trec.ts";
import type { Qrels, Run } from "../src/data/types.ts";
import { evaluate } from "../src/eval/metrics.ts";
import { mulberry32 } from "../src/eval/stats.ts";

/** A synthetic 1,000 x 1,000 run and its qrels; scores rounded to 3 decimals to create ties. */
export function syntheticRun(queries = 1000, depth = 1000): { qrels: Qrels; run: Run } {
  const rand = mulberry32(42);
  const qrels: Qrels = new Map();
  const run: Run = new Map();
  for (let q = 0; q < queries; q++) {
    const qid = `q${q}`;
    const docIds: string[] = [];
    const scores = new Float64Array(depth);
    for (let i = 0; i < depth; i++) {
      docIds.push(`d${Math.floor(rand() * 1e6)}_${i}`);
      scores[i] = Math.round(rand() * 1000) / 1000;
    }
    const judged = new Map<string, number>();
    for (let j = 0; j < 10; j++) judged.set(docIds[Math.floor(rand() * depth)], 1 + (j % 3));
    for (let j = 0; j < 5; j++) judged.set(`unretrieved${j}`, 1);
    qrels.set(qid, judged);
    run.set(qid, { docIds, scores });
  }
  return { qrels, run };
}

const { qrels, run } = syntheticRun();
const text = formatTrecRun(run);

Deno.bench("evaluate 1M run lines (1000 queries x 1000 docs)", () => {
  evaluate(qrels, run);
});

Deno.bench("parse 1M TREC run lines from text", () => {
  parseTrecRun(text);
});

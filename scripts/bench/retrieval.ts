/**
 * The `retrieval` benchmark section (`deno task bench --only retrieval`):
 *
 * - exact dense top-1000 over SciFact-sized random unit embeddings (5,183 x 512 corpus, 300
 *   queries), timed end to end from host embeddings to the host top-k (upload, scores matmul,
 *   GPU top-k and merges, read-back): queries/s. The top-k alone on the same [300, 5183] score
 *   matrix is timed beside it, and a host baseline (a JavaScript sort of each row) for scale.
 * - trec_eval-exact metrics over a synthetic 1M-line run (1,000 queries x 1,000 documents,
 *   scores with ties, 10 judged documents per query): seconds per `evaluate`.
 *
 * Each timing is the best of `--iters` runs after `--warmup` untimed ones.
 *
 * Result keys: `retrieval: { corpus, queries, dim, k, seconds, queriesPerSecond,
 * topkSeconds, hostSortSeconds, metricsRunLines, metricsSeconds }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import type { Qrels, Run } from "../../src/data/types.ts";
import { normalizeRows, retrieveWithEmbeddings } from "../../src/eval/dense.ts";
import { evaluate } from "../../src/eval/metrics.ts";
import { mulberry32 } from "../../src/eval/stats.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { Tensor } from "../../src/gpu/tensor.ts";
import { topk } from "../../src/ops/topk.ts";

function gaussian(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

/** A synthetic run of `queries` x `depth` lines with qrels (scores rounded to create ties). */
export function syntheticRun(queries: number, depth: number): { qrels: Qrels; run: Run } {
  const rand = mulberry32(42);
  const qrels: Qrels = new Map();
  const run: Run = new Map();
  for (let q = 0; q < queries; q++) {
    const docIds: string[] = [];
    const scores = new Float64Array(depth);
    for (let i = 0; i < depth; i++) {
      docIds.push(`d${Math.floor(rand() * 1e6)}_${i}`);
      scores[i] = Math.round(rand() * 1000) / 1000;
    }
    const judged = new Map<string, number>();
    for (let j = 0; j < 10; j++) judged.set(docIds[Math.floor(rand() * depth)], 1 + (j % 3));
    judged.set(`unretrieved${q}`, 1);
    qrels.set(`q${q}`, judged);
    run.set(`q${q}`, { docIds, scores });
  }
  return { qrels, run };
}

async function best(iters: number, warmup: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  let t = Infinity;
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    t = Math.min(t, (performance.now() - t0) / 1000);
  }
  return t;
}

/** retrieval: dense top-1000 queries/s at SciFact size, and metrics over 1M run lines. */
export async function retrievalSection(ctx: BenchContext): Promise<void> {
  const { gpu, options } = ctx;
  const N = 5183, Q = 300, D = 512, k = 1000;
  const corpus = normalizeRows({ count: N, dim: D, data: gaussian(N * D, 1) });
  const queries = normalizeRows({ count: Q, dim: D, data: gaussian(Q * D, 2) });
  const iters = options.iters, warmup = Math.max(1, options.warmup);

  const seconds = await best(iters, warmup, async () => {
    await retrieveWithEmbeddings(gpu, queries, corpus, k);
  });
  ctx.log(
    `retrieval: exact top-${k}, ${Q} queries x ${N} docs x ${D}: ${seconds.toFixed(3)} s, ` +
      `${(Q / seconds).toFixed(1)} queries/s`,
  );

  const scoreData = gaussian(Q * N, 3);
  const scores = Tensor.from(gpu, scoreData, [Q, N]);
  const topkSeconds = await best(iters, warmup, async () => {
    const top = await topk(gpu, scores, k);
    await synchronize(gpu);
    top.values.destroy();
    top.indices.destroy();
  });
  scores.destroy();
  const hostSortSeconds = await best(1, 0, () => {
    const idx = new Uint32Array(N);
    for (let r = 0; r < Q; r++) {
      const row = scoreData.subarray(r * N, (r + 1) * N);
      for (let i = 0; i < N; i++) idx[i] = i;
      idx.sort((a, b) => row[b] - row[a] || a - b);
    }
    return Promise.resolve();
  });
  ctx.log(
    `retrieval: top-${k} of [${Q}, ${N}] scores on the GPU ${topkSeconds.toFixed(3)} s ` +
      `(host sort of each row: ${hostSortSeconds.toFixed(3)} s)`,
  );

  const { qrels, run } = syntheticRun(1000, 1000);
  const metricsSeconds = await best(Math.min(iters, 3), 0, () => {
    evaluate(qrels, run);
    return Promise.resolve();
  });
  ctx.log(`retrieval: trec_eval measures over 1,000,000 run lines: ${metricsSeconds.toFixed(3)} s`);

  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  ctx.result.retrieval = {
    corpus: N,
    queries: Q,
    dim: D,
    k,
    seconds: r3(seconds),
    queriesPerSecond: r3(Q / seconds),
    topkSeconds: r3(topkSeconds),
    hostSortSeconds: r3(hostSortSeconds),
    metricsRunLines: 1_000_000,
    metricsSeconds: r3(metricsSeconds),
  };
}

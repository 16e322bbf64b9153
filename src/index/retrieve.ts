/**
 * Retrieval from an index (src/index/lance.ts): queries encoded on the GPU by the index's own
 * model (checked against the identity its shards were encoded with), searched in LanceDB; and,
 * on request, the exact top-k recomputed from the shards on the GPU, shard by shard (one shard's
 * rows in host memory at a time; {@link exactSearchShards}), with the ANN's recall@k against it.
 *
 * @example
 * ```ts
 * const { run, exact, annRecall } = await retrieveFromIndex(gpu, "index", queries, {
 *   k: 1000, exact: true,
 * });
 * ```
 *
 * @module
 */
import type { Run } from "../data/types.ts";
import {
  type EmbeddingMatrix,
  normalizeRows,
  type Retrieved,
  retrieveWithEmbeddings,
} from "../eval/dense.ts";
import type { Gpu } from "../gpu/device.ts";
import { encodeTexts } from "../models/encode.ts";
import { loadEncoder } from "../models/load.ts";
import { readManifest, runOverlap, searchIndex, type SearchSettings } from "./lance.ts";
import { eachShard, encoderIdentity, type ShardExpectation, ShardMismatchError } from "./shards.ts";
import { DataFormatError } from "../data/types.ts";

/** Options of {@link retrieveFromIndex}. */
export interface IndexRetrieveOptions extends Partial<SearchSettings> {
  /** Documents per query. Default 1000. */
  k?: number;
  /** Also compute the exact top-k from the shards, and the ANN's recall against it. */
  exact?: boolean;
  /** Query texts per GPU batch. */
  batchSize?: number;
  /** The LanceDB database to search instead of the manifest's (src/index/lance.ts `tableUri`). */
  tableUri?: string;
  /** Notes. */
  log?: (message: string) => void;
}

/** What {@link retrieveFromIndex} returns. */
export interface IndexRetrieval {
  /** The ANN run. */
  run: Run;
  /** The exact run, with `exact`. */
  exact?: Run;
  /** ANN recall@k against the exact run, for k in 10, 100, 1000 up to `k`, with `exact`. */
  annRecall?: Record<string, number>;
  /** Seconds searching LanceDB (queries encoded excluded). */
  searchSeconds: number;
}

/**
 * Encodes `queries` with the index's model and searches the index in `out` (see the module
 * doc). The model must still be the one the shards were encoded with: a changed checkpoint is a
 * {@link ShardMismatchError}.
 */
export async function retrieveFromIndex(
  gpu: Gpu,
  out: string,
  queries: Map<string, string>,
  opts: IndexRetrieveOptions = {},
): Promise<IndexRetrieval> {
  const log = opts.log ?? (() => {});
  const m = await readManifest(out);
  if (!m) throw new DataFormatError(`${out}/index.json`, 0, "no index here (deno task index)");
  const model = await loadEncoder(gpu, m.model, { maxLength: m.maxLength, ...m.load });
  if (await encoderIdentity(model, m.maxLength) !== m.identity) {
    throw new ShardMismatchError(
      `${out}/index.json`,
      `the model ${m.model} is not the one the index was encoded with (its weights, tokenizer ` +
        `or settings changed): re-encode the index`,
    );
  }
  const qids = [...queries.keys()];
  const qs = normalizeRows(
    await encodeTexts(gpu, model, qids.map((q) => queries.get(q)!), {
      role: "query",
      maxLength: m.queryMaxLength,
      batchSize: opts.batchSize,
    }),
  );
  for (const t of model.named.values()) t.destroy();
  const k = Math.min(opts.k ?? 1000, m.documents);
  const t0 = performance.now();
  const run = await searchIndex(out, qs, qids, {
    k,
    nprobes: opts.nprobes,
    refineFactor: opts.refineFactor,
    tableUri: opts.tableUri,
  });
  const searchSeconds = (performance.now() - t0) / 1000;
  log(`index: ${qids.length} queries searched in ${searchSeconds.toFixed(2)} s`);
  if (!opts.exact) return { run, searchSeconds };
  const exact = await exactSearchShards(gpu, out, m.shards, qs, qids, k, {
    identity: m.identity,
    corpus: m.corpus,
    source: `${out}/index.json`,
  });
  const annRecall: Record<string, number> = {};
  for (const at of [10, 100, 1000]) if (at <= k) annRecall[String(at)] = runOverlap(run, exact, at);
  return { run, exact, annRecall, searchSeconds };
}

/**
 * The running top-k of every query over the shards seen so far: rows [Q, k], best first (ties
 * to the lower corpus row, which is the earlier entry, as shards come in corpus order).
 */
interface RunningTopk {
  /** Entries per query so far. */
  k: number;
  /** Scores [Q, k]. */
  scores: Float32Array;
  /** Document ids [Q, k]. */
  ids: string[];
}

/** NaN ranks last, as on the GPU (src/ops/topk.ts). */
const rankScore = (x: number) => x !== x ? -Infinity : x;

/**
 * Merges one shard's GPU top-k (`top`, document rows relative to the shard, whose ids are
 * `ids`) into the running top-k of the shards before it, keeping `k` per query,
 * in the exact search's order: score descending, ties to the lower corpus row (as
 * {@link retrieveWithEmbeddings} orders a single array, so streaming changes no result).
 */
function mergeTopk(
  run: RunningTopk,
  top: Retrieved,
  ids: readonly string[],
  queries: number,
  k: number,
): RunningTopk {
  const kk = Math.min(k, run.k + top.k);
  const out: RunningTopk = {
    k: kk,
    scores: new Float32Array(queries * kk),
    ids: new Array(queries * kk),
  };
  for (let q = 0; q < queries; q++) {
    let a = 0, b = 0;
    for (let j = 0; j < kk; j++) {
      const o = q * kk + j;
      let takeA = b >= top.k;
      if (a < run.k && b < top.k) {
        const sa = rankScore(run.scores[q * run.k + a]);
        const sb = rankScore(top.scores[q * top.k + b]);
        // Earlier shards hold lower rows, so a tie goes to the running top-k.
        takeA = sa >= sb;
      }
      if (takeA) {
        const i = q * run.k + a++;
        out.scores[o] = run.scores[i];
        out.ids[o] = run.ids[i];
      } else {
        const i = q * top.k + b++;
        out.scores[o] = top.scores[i];
        out.ids[o] = ids[top.indices[i]];
      }
    }
  }
  return out;
}

/**
 * The exact top `k` of every query (L2-normalised rows of `queries`, in the order of `qids`) over
 * the `n` shards of the index in `out`, streamed: each shard is read (and checked against
 * `want`, see src/index/shards.ts `eachShard`), scored on the GPU with
 * {@link retrieveWithEmbeddings}, and its top k merged on the host into the running top k. The
 * result equals exact retrieval over all shards concatenated: score descending, ties to the
 * lower corpus row. Host memory: one shard's rows, plus the running top k (Q x k scores
 * and ids); GPU memory as {@link retrieveWithEmbeddings}, bounded by its chunk.
 */
export async function exactSearchShards(
  gpu: Gpu,
  out: string,
  n: number,
  queries: EmbeddingMatrix,
  qids: readonly string[],
  k: number,
  want?: ShardExpectation,
): Promise<Run> {
  const Q = queries.count;
  let run: RunningTopk = { k: 0, scores: new Float32Array(0), ids: [] };
  for await (const shard of eachShard(out, n, want)) {
    const docs = { count: shard.ids.length, dim: shard.dim, data: shard.data };
    const top = await retrieveWithEmbeddings(gpu, queries, docs, k);
    run = mergeTopk(run, top, shard.ids, Q, k);
  }
  const result: Run = new Map();
  qids.forEach((qid, q) => {
    result.set(qid, {
      docIds: run.ids.slice(q * run.k, (q + 1) * run.k),
      scores: Float64Array.from(run.scores.subarray(q * run.k, (q + 1) * run.k)),
    });
  });
  return result;
}

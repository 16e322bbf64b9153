/**
 * Retrieval from an index (src/index/lance.ts): queries encoded on the GPU by the index's own
 * model (checked against the identity its shards were encoded with), searched in LanceDB; and,
 * on request, the exact top-k recomputed from the shards on the GPU, with the ANN's recall@k
 * against it.
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
import { normalizeRows, retrievedRun, retrieveWithEmbeddings } from "../eval/dense.ts";
import type { Gpu } from "../gpu/device.ts";
import { encodeTexts } from "../models/encode.ts";
import { loadEncoder } from "../models/load.ts";
import { readManifest, runOverlap, searchIndex, type SearchSettings } from "./lance.ts";
import { encoderIdentity, readShards, ShardMismatchError } from "./shards.ts";
import { DataFormatError } from "../data/types.ts";

/** Options of {@link retrieveFromIndex}. */
export interface IndexRetrieveOptions extends Partial<SearchSettings> {
  /** Documents per query. Default 1000. */
  k?: number;
  /** Also compute the exact top-k from the shards, and the ANN's recall against it. */
  exact?: boolean;
  /** Query texts per GPU batch. */
  batchSize?: number;
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
  });
  const searchSeconds = (performance.now() - t0) / 1000;
  log(`index: ${qids.length} queries searched in ${searchSeconds.toFixed(2)} s`);
  if (!opts.exact) return { run, searchSeconds };
  const rows = await readShards(out, m.shards);
  const docs = { count: rows.ids.length, dim: rows.dim, data: rows.data };
  const top = await retrieveWithEmbeddings(gpu, qs, docs, k);
  const exact = retrievedRun(top, qids, (j) => rows.ids[j]);
  const annRecall: Record<string, number> = {};
  for (const at of [10, 100, 1000]) if (at <= k) annRecall[String(at)] = runOverlap(run, exact, at);
  return { run, exact, annRecall, searchSeconds };
}

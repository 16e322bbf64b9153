/**
 * The index: a directory holding the encoded shards (src/index/shards.ts), a manifest
 * (`index.json`: the model, its identity, the corpus, the shard count, the ANN settings, where
 * the table is) and a LanceDB table `docs` (columns `id` and `vector`) with an approximate
 * nearest-neighbour index over the L2-normalised embeddings (cosine). The table lives in the
 * LanceDB database `INDEX/lance` unless built with {@link BuildIndexOptions.tableUri}: any URI
 * LanceDB's `connect` accepts (`s3://bucket/path`, `gs://...`, `az://...`, a local directory),
 * recorded in the manifest; the shards and `index.json` always stay in the local (or shared
 * file system) index directory. LanceDB is imported lazily here only: `mod.ts` and the GPU core
 * never load it.
 *
 * @example
 * ```ts
 * await buildIndex("index", { shards: 2 });
 * const run = await searchIndex("index", queryEmbeddings, qids, { k: 100 });
 * ```
 *
 * @module
 */
import type { Run } from "../data/types.ts";
import type { Pooling } from "../models/config.ts";
import type { PromptOverrides } from "../models/st_layout.ts";
import type { EmbeddingMatrix } from "../eval/dense.ts";
import { writeTextFileAtomic } from "../util/fs.ts";
import { readJsonFile } from "../data/lines.ts";
import { DataFormatError } from "../data/types.ts";
import { eachShard, ShardMismatchError } from "./shards.ts";

/** The LanceDB and Arrow versions measured to work in Deno (README: set-up). */
const LANCEDB = "npm:@lancedb/lancedb@0.31.0";

/** An approximate index over the vectors, or none (exact, brute-force search in LanceDB). */
export type AnnSettings =
  | { kind: "ivf_pq"; partitions: number; subVectors: number }
  | { kind: "ivf_hnsw_sq"; partitions: number }
  | { kind: "none" };

/** Search-time settings. */
export interface SearchSettings {
  /** IVF partitions probed per query. */
  nprobes: number;
  /** Candidates re-scored with the exact vectors: `refineFactor` x k (0: none). */
  refineFactor: number;
}

/** What `index.json` holds. */
export interface IndexManifest {
  /** Format version. */
  version: 1;
  /** The model as given (`use-lite`, a directory, a Hub name). */
  model: string;
  /** Pooling and prompt overrides the model was loaded with. */
  load?: { pooling?: Pooling; prompts?: PromptOverrides };
  /** The encoder's identity at `maxLength` (src/index/shards.ts `encoderIdentity`). */
  identity: string;
  /** The corpus fingerprint. */
  corpus: string;
  /** Documents in the corpus. */
  documents: number;
  /** Number of shards. */
  shards: number;
  /** Document tokens at most. */
  maxLength: number;
  /** Query tokens at most (for retrieval). */
  queryMaxLength: number;
  /** The ANN index built, once built. */
  ann: AnnSettings | null;
  /** Default search settings, once built. */
  search: SearchSettings | null;
  /**
   * The LanceDB database (a URI LanceDB's `connect` accepts) holding the table `docs`, when
   * built elsewhere than `INDEX/lance` ({@link BuildIndexOptions.tableUri}).
   */
  table?: string;
}

/** Whether `s` is a URI with a scheme (`s3://...`, `gs://...`, `file://...`), not a path. */
export function isUri(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(s);
}

/**
 * The LanceDB database of the index in `out`: `override` when given, else the manifest's
 * `table`, else `out/lance`.
 */
export function tableUri(out: string, m: IndexManifest | null, override?: string): string {
  return override ?? m?.table ?? `${out}/lance`;
}

/** Reads `out/index.json`, or null when there is none. */
export async function readManifest(out: string): Promise<IndexManifest | null> {
  return await readJsonFile(`${out}/index.json`, { optional: true }) as IndexManifest | null;
}

/** Writes `out/index.json` (atomically). */
export async function writeManifest(out: string, m: IndexManifest): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  await writeTextFileAtomic(`${out}/index.json`, JSON.stringify(m, null, 2) + "\n");
}

/**
 * Checks that this run's encoder and corpus agree with an existing manifest (a
 * {@link ShardMismatchError} otherwise), or writes one.
 */
export async function openManifest(
  out: string,
  want: Omit<IndexManifest, "version" | "ann" | "search">,
): Promise<IndexManifest> {
  const have = await readManifest(out);
  if (!have) {
    const m: IndexManifest = { version: 1, ...want, ann: null, search: null };
    await writeManifest(out, m);
    return m;
  }
  const diff = (["identity", "corpus", "shards", "maxLength"] as const).filter((k) =>
    have[k] !== want[k]
  );
  if (diff.length) {
    throw new ShardMismatchError(
      `${out}/index.json`,
      `this index was made with another ${diff.join(", ")} (model ${have.model}, ${have.shards} ` +
        `shards, max length ${have.maxLength}): every shard must use the same model, length, ` +
        `prompts, corpus and shard count; use another --out`,
    );
  }
  return have;
}

/** Overrides of the ANN settings {@link annSettings} chooses. */
export interface AnnOverrides {
  /** The index kind. */
  kind?: AnnSettings["kind"];
  /** IVF partitions. */
  partitions?: number;
  /** PQ sub-vectors (must divide the width). */
  subVectors?: number;
}

/** Below this many vectors exact search is as fast as an ANN index (none is built). */
const EXACT_SEARCH_VECTORS = 4096;

/**
 * ANN settings for `n` vectors of width `dim`: none below 4096 vectors (exact search is as
 * fast); else IVF-PQ with about sqrt(n) partitions (at least 256 vectors each, as PQ training
 * needs) and sub-vectors of 16 dimensions (8 when 16 does not divide the width); `o` overrides.
 */
export function annSettings(n: number, dim: number, o: AnnOverrides = {}): AnnSettings {
  const kind = o.kind ?? (n < EXACT_SEARCH_VECTORS ? "none" : "ivf_pq");
  if (kind === "none") return { kind };
  const partitions = o.partitions ??
    Math.max(1, Math.min(Math.round(Math.sqrt(n)), Math.floor(n / 256)));
  if (kind === "ivf_hnsw_sq") return { kind, partitions };
  const subVectors = o.subVectors ?? (dim % 16 === 0 ? dim / 16 : dim % 8 === 0 ? dim / 8 : 1);
  if (dim % subVectors !== 0) {
    throw new RangeError(`${subVectors} sub-vectors do not divide the ${dim}-d vectors`);
  }
  return { kind, partitions, subVectors };
}

/**
 * Search defaults for `ann` over `documents` vectors: half the partitions probed, at least 8 and
 * at most 64, but never fewer than hold 4096 vectors (below that many, exact search costs nothing,
 * as {@link annSettings} assumes), and 10 x k candidates re-scored with the exact vectors. On
 * SciFact with USE-lite (5,183 documents, 20 partitions) this probes 16: over thirty rebuilds of
 * the index (its k-means is randomly seeded) ANN recall@10 0.998-1.000, @100 0.995-0.998 and
 * nDCG@10 0 to -0.0033 from exact (docs/index_scifact_nprobes.json), where half the partitions
 * (10) gave recall@100 0.963-0.970 and nDCG@10 down to -0.0046, and once -0.0067
 * (tests/index_test.ts holds recall@100 >= 0.95 and nDCG@10 within 0.005). Large corpora should
 * pick nprobes from `eval --exact` on their own queries: on a synthetic corpus of 1M 384-d
 * vectors (harder than real embeddings: near-tied neighbours) these defaults (64 of 1000
 * partitions) gave recall@100 0.53, and all partitions 0.82
 * (docs/bench_cpu_xeon_avx512_index_1m.json). `o` overrides.
 */
export function searchSettings(
  ann: AnnSettings,
  documents: number,
  o: Partial<SearchSettings> = {},
): SearchSettings {
  const auto = ann.kind === "none" ? { nprobes: 1, refineFactor: 0 } : {
    nprobes: Math.min(
      ann.partitions,
      Math.max(
        8,
        Math.min(64, Math.ceil(ann.partitions / 2)),
        Math.ceil(EXACT_SEARCH_VECTORS * ann.partitions / documents),
      ),
    ),
    refineFactor: 10,
  };
  return { ...auto, ...Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) };
}

/** Options of {@link buildIndex}. */
export interface BuildIndexOptions {
  /** Overrides of {@link annSettings}. */
  ann?: AnnOverrides;
  /** Overrides of the search defaults ({@link searchSettings}) recorded in the manifest. */
  search?: Partial<SearchSettings>;
  /** Rows added to the table per batch. Default 65536. */
  batchRows?: number;
  /**
   * Where to put the table: a LanceDB database URI (`s3://bucket/path`, `gs://...`,
   * `az://...`) or a local directory, recorded in the manifest (a relative local path is
   * resolved against the working directory). Default: the manifest's, else `out/lance`.
   * Credentials come from the environment, as LanceDB reads them (e.g. `AWS_*`).
   */
  tableUri?: string;
  /** Notes. */
  log?: (message: string) => void;
}

// deno-lint-ignore no-explicit-any
type Lance = any;

async function lance(): Promise<Lance> {
  // LanceDB's Rust logging: errors only unless asked for (it warns of every new dataset).
  if (Deno.env.get("LANCEDB_LOG") === undefined) Deno.env.set("LANCEDB_LOG", "error");
  return await import(LANCEDB);
}

/**
 * Builds the LanceDB table `docs` from every shard of the index in `out` and its ANN index, and
 * records the settings (and the table's URI) in the manifest. Every shard must be encoded and
 * carry the manifest's encoder identity and corpus fingerprint: one that does not is a
 * {@link ShardMismatchError} naming the shard's file and both values. The table is created from
 * the first shard and the others are added to it one by one, so host memory holds one shard's
 * rows (ids and float32 embeddings) plus one batch of `batchRows` row records at a time, never
 * the corpus. Rebuilding replaces the table; while it is rebuilt (and after a failed build) the
 * manifest says the index is not built.
 */
export async function buildIndex(
  out: string,
  opts: BuildIndexOptions = {},
): Promise<IndexManifest> {
  const log = opts.log ?? (() => {});
  const m = await readManifest(out);
  if (!m) {
    throw new DataFormatError(`${out}/index.json`, 0, "no index here: encode its shards first");
  }
  const given = opts.tableUri;
  const uri = given === undefined
    ? tableUri(out, m)
    : isUri(given)
    ? given
    : given.startsWith("/")
    ? given
    : `${Deno.cwd()}/${given}`;
  const table = given === undefined ? m.table : uri;
  const ldb = await lance();
  const batch = opts.batchRows ?? 65536;
  const t0 = performance.now();
  // deno-lint-ignore no-explicit-any
  let docs: any = null;
  let n = 0, dim = 0;
  try {
    const want = { identity: m.identity, corpus: m.corpus, source: `${out}/index.json` };
    for await (const rows of eachShard(out, m.shards, want)) {
      dim = rows.dim;
      // Plain records: an Arrow table built here reaches LanceDB 0.31 empty (measured), records
      // do.
      const records = (a: number, b: number) =>
        rows.ids.slice(a, b).map((id, j) => ({
          id,
          vector: Array.from(rows.data.subarray((a + j) * rows.dim, (a + j + 1) * rows.dim)),
        }));
      for (let a = 0; a < rows.ids.length; a += batch) {
        const part = records(a, Math.min(rows.ids.length, a + batch));
        if (!docs) {
          // From here on the old table is gone: the manifest says "not built" until the end.
          await writeManifest(out, { ...m, ann: null, search: null, table });
          const db = await ldb.connect(uri);
          docs = await db.createTable("docs", part, { mode: "overwrite" });
        } else await docs.add(part);
      }
      n += rows.ids.length;
    }
    if (n === 0) {
      throw new ShardMismatchError(out, "the shards hold no documents: nothing to index");
    }
    if (n !== m.documents) {
      throw new ShardMismatchError(out, `the shards hold ${n} documents, not ${m.documents}`);
    }
    log(
      `index: ${n} vectors in the LanceDB table at ${uri} (${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s)`,
    );
    const ann = annSettings(n, dim, opts.ann);
    const search = searchSettings(ann, n, opts.search);
    if (ann.kind !== "none") {
      const t1 = performance.now();
      const config = ann.kind === "ivf_pq"
        ? ldb.Index.ivfPq({
          numPartitions: ann.partitions,
          numSubVectors: ann.subVectors,
          distanceType: "cosine",
        })
        : ldb.Index.hnswSq({ numPartitions: ann.partitions, distanceType: "cosine" });
      await docs.createIndex("vector", { config, replace: true });
      log(
        `index: ${ann.kind} with ${ann.partitions} partitions built in ` +
          `${((performance.now() - t1) / 1000).toFixed(1)} s`,
      );
    }
    const built: IndexManifest = { ...m, ann, search, table };
    if (table === undefined) delete built.table;
    await writeManifest(out, built);
    return built;
  } finally {
    docs?.close?.();
  }
}

/** Options of {@link searchIndex}. */
export interface SearchIndexOptions extends Partial<SearchSettings> {
  /** Documents per query. Default 1000. */
  k?: number;
  /** Called after each query. */
  onProgress?: (done: number, total: number) => void;
  /** The LanceDB database to open instead of the manifest's ({@link tableUri}). */
  tableUri?: string;
}

/**
 * Searches the index's LanceDB table with L2-normalised query embeddings (rows of `queries`,
 * in the order of `qids`), the manifest's search settings unless overridden; scores are cosine
 * similarities (1 - LanceDB's cosine distance), documents in trec_eval order. The table is
 * opened at `opts.tableUri`, else where the manifest says ({@link tableUri}).
 */
export async function searchIndex(
  out: string,
  queries: EmbeddingMatrix,
  qids: readonly string[],
  opts: SearchIndexOptions = {},
): Promise<Run> {
  const m = await readManifest(out);
  if (!m?.ann || !m.search) {
    throw new DataFormatError(
      `${out}/index.json`,
      0,
      "the index is not built: run deno task index --build",
    );
  }
  const nprobes = opts.nprobes ?? m.search.nprobes;
  const refine = opts.refineFactor ?? m.search.refineFactor;
  const k = Math.min(opts.k ?? 1000, m.documents);
  const ldb = await lance();
  const uri = tableUri(out, m, opts.tableUri);
  let table: Lance;
  try {
    table = await (await ldb.connect(uri)).openTable("docs");
  } catch (e) {
    throw new DataFormatError(
      uri,
      0,
      `cannot open the index's LanceDB table docs here (${(e as Error).message}): build the ` +
        `index (deno task index --build), or give the --table-uri it was built with`,
    );
  }
  const run: Run = new Map();
  try {
    for (const [r, qid] of qids.entries()) {
      const v = Array.from(queries.data.subarray(r * queries.dim, (r + 1) * queries.dim));
      let q = table.search(v).distanceType("cosine").limit(k).select(["id", "_distance"]);
      if (m.ann.kind !== "none") {
        q = q.nprobes(nprobes);
        if (refine > 0) q = q.refineFactor(refine);
      }
      const hits: { id: string; _distance: number }[] = await q.toArray();
      const ranked = hits.map((h) => ({ id: String(h.id), score: 1 - h._distance }))
        .sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      run.set(qid, {
        docIds: ranked.map((h) => h.id),
        scores: Float64Array.from(ranked, (h) => h.score),
      });
      opts.onProgress?.(r + 1, qids.length);
    }
  } finally {
    table.close?.();
  }
  return run;
}

/**
 * The overlap of two runs' top k per query, averaged over the queries of `reference` (ANN
 * recall@k when `reference` is the exact run).
 */
export function runOverlap(run: Run, reference: Run, k: number): number {
  let sum = 0, n = 0;
  for (const [q, ref] of reference) {
    const want = new Set(ref.docIds.slice(0, k));
    if (want.size === 0) continue;
    const got = (run.get(q)?.docIds ?? []).slice(0, k);
    sum += got.filter((d) => want.has(d)).length / want.size;
    n++;
  }
  return n ? sum / n : 0;
}

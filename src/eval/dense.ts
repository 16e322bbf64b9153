/**
 * Exact dense retrieval and re-ranking on the GPU, with encoded corpora cached on disk.
 *
 * Dimension legend: Q queries, N documents, D embedding width, C documents per corpus chunk,
 * Qb queries per block, k documents kept per query, K = k rounded up to a power of two.
 *
 * Retrieval ({@link retrieveWithEmbeddings}): embeddings are L2-normalised, so cosine = dot.
 * For each block of queries, the corpus is scored chunk by chunk (scores [Qb, C] =
 * queries · chunkᵀ with `matmulInto`), each chunk's top K is selected on the GPU
 * (`src/ops/topk.ts`) beside the best K so far, and the two sorted runs are merged into the new
 * best K; GPU memory is bounded by the chunk and block sizes, not by N. Ties rank the lower
 * document index first (trec_eval re-sorts ties by document id anyway).
 *
 * Re-ranking ({@link rerank}): only the candidate documents are encoded, and only the needed
 * (query, candidate) pairs are scored (dot products on the host, accumulated in float64).
 *
 * Caching ({@link encodeCached}): embeddings of a list of texts are stored as
 * `<cacheDir>/<key>.f32` (raw little-endian float32 rows) beside `<key>.json` (a header), where
 * the key is the SHA-256 of the model identity (a hash of its config and weights, or a given id),
 * the tokenizer's identity (a hash of its fingerprint: `tokenizer.json` and
 * `tokenizer_config.json`, or USE-lite's vocabulary and configuration), the encoder config
 * (pooling, normalisation, padding id, ...), the maximum length and the SHA-256 of the texts. Files are written to temporary names and
 * renamed into place, the header last; a header or data file that does not match is ignored with
 * a note, and the texts are encoded again.
 *
 * @module
 */
import { type Doc, docText, type Run } from "../data/types.ts";
import type { Gpu } from "../gpu/device.ts";
import { synchronize } from "../gpu/kernels.ts";
import { Tensor } from "../gpu/tensor.ts";
import { encodeTexts } from "../models/encode.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import type { TextRole } from "../models/st_layout.ts";
import type { TextTokenizer } from "../text/tokenizer.ts";
import { matmulInto } from "../ops/matmul.ts";
import { topkInto, topkMergeInto, topkPlan } from "../ops/topk.ts";
import { sha256Hex } from "../util/hash.ts";

/** Row-major embeddings [count, dim]. */
export interface EmbeddingMatrix {
  /** Rows. */
  count: number;
  /** Width. */
  dim: number;
  /** Values, row-major. */
  data: Float32Array;
}

/** Options of {@link retrieveWithEmbeddings}. */
export interface RetrieveOptions {
  /** Documents scored per chunk (bounds GPU memory). Default 16384. */
  chunkSize?: number;
  /** Bytes for one block's score matrix [Qb, C] at most. Default 64 MiB. */
  scoreBudget?: number;
  /** Largest top-k tile (benchmarks); default the device's. */
  maxTile?: number;
}

/** The top k of every query: row-major [Q, k], best first. */
export interface Retrieved {
  /** Documents per query: min(k, N). */
  k: number;
  /** Document rows [Q, k]. */
  indices: Uint32Array;
  /** Dot products [Q, k]. */
  scores: Float32Array;
}

/** Scales each row to unit L2 norm (zero rows stay zero), in place; returns the matrix. */
export function normalizeRows(m: EmbeddingMatrix): EmbeddingMatrix {
  for (let r = 0; r < m.count; r++) {
    const row = m.data.subarray(r * m.dim, (r + 1) * m.dim);
    let s = 0;
    for (let i = 0; i < row.length; i++) s += row[i] * row[i];
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let i = 0; i < row.length; i++) row[i] *= inv;
    }
  }
  return m;
}

/**
 * Exact top-k by dot product of every query against every corpus row, on the GPU (the
 * embeddings are used as given: normalise them first for cosine).
 *
 * @example
 * ```ts
 * const top = await retrieveWithEmbeddings(gpu, queries, corpus, 10);
 * const bestDocOfQuery0 = top.indices[0];
 * ```
 */
export async function retrieveWithEmbeddings(
  gpu: Gpu,
  queryEmb: EmbeddingMatrix,
  corpusEmb: EmbeddingMatrix,
  k: number,
  opts: RetrieveOptions = {},
): Promise<Retrieved> {
  const { dim: D } = queryEmb;
  if (corpusEmb.dim !== D) {
    throw new RangeError(`query width ${D} differs from corpus width ${corpusEmb.dim}`);
  }
  const Q = queryEmb.count, N = corpusEmb.count;
  const keep = Math.min(k, N);
  const indices = new Uint32Array(Q * keep);
  const scores = new Float32Array(Q * keep);
  if (Q === 0 || keep === 0) return { k: keep, indices, scores };

  const maxBinding = gpu.limits.maxStorageBufferBindingSize;
  const pad4 = (x: number) => Math.ceil(x / 4) * 4;
  // C padded to a multiple of 4 so the register-blocked matmul applies to every chunk.
  const C = pad4(
    Math.max(1, Math.min(opts.chunkSize ?? 16384, N, Math.floor(maxBinding / (4 * D)))),
  );
  const { K } = topkPlan(gpu, C, k, { maxTile: opts.maxTile });
  const budget = Math.min(opts.scoreBudget ?? 64 * 2 ** 20, maxBinding);
  const Qb = Math.max(
    1,
    Math.min(Q, Math.floor(budget / (4 * C)), Math.floor(maxBinding / (8 * K))),
  );

  const scoreBuf = Tensor.zeros(gpu, [Qb, C], "f32", "dense scores");
  const qBuf = Tensor.zeros(gpu, [Qb, D], "f32", "dense queries");
  const cBuf = Tensor.zeros(gpu, [C, D], "f32", "dense corpus chunk");
  const pairs = [0, 1].map(() => ({
    values: Tensor.zeros(gpu, [Qb, 2 * K], "f32", "dense best"),
    indices: Tensor.zeros(gpu, [Qb, 2 * K], "u32", "dense best indices"),
  }));
  const chunkData = new Float32Array(C * D);
  try {
    for (let q0 = 0; q0 < Q; q0 += Qb) {
      const qb = Math.min(Qb, Q - q0);
      const qView = new Tensor(gpu, qBuf.buffer, [qb, D], "f32");
      qView.write(queryEmb.data.subarray(q0 * D, (q0 + qb) * D));
      let cur = 0;
      for (let c0 = 0; c0 < N; c0 += C) {
        const c = Math.min(C, N - c0);
        const cp = pad4(c);
        const cView = new Tensor(gpu, cBuf.buffer, [cp, D], "f32");
        chunkData.set(corpusEmb.data.subarray(c0 * D, (c0 + c) * D));
        chunkData.fill(0, c * D, cp * D);
        cView.write(chunkData.subarray(0, cp * D));
        const sView = new Tensor(gpu, scoreBuf.buffer, [qb, cp], "f32");
        await matmulInto(gpu, qView, cView, sView, { transB: true });
        // The chunk's best K go beside the best so far (or become it, for the first chunk).
        const pair = pairs[cur];
        await topkInto(
          gpu,
          { values: sView, rows: qb, len: c, stride: cp },
          { values: pair.values, indices: pair.indices, stride: 2 * K, offset: c0 === 0 ? 0 : K },
          k,
          { indexOffset: c0, maxTile: opts.maxTile },
        );
        if (c0 > 0) {
          const next = pairs[1 - cur];
          await topkMergeInto(
            gpu,
            { values: pair.values, indices: pair.indices, rows: qb, len: 2 * K, stride: 2 * K },
            { values: next.values, indices: next.indices, stride: 2 * K, offset: 0 },
            k,
            { maxTile: opts.maxTile },
          );
          cur = 1 - cur;
        }
      }
      const best = pairs[cur];
      const vals = await new Tensor(gpu, best.values.buffer, [qb, 2 * K], "f32").read();
      const idx = await new Tensor(gpu, best.indices.buffer, [qb, 2 * K], "u32").read();
      for (let r = 0; r < qb; r++) {
        scores.set(vals.subarray(r * 2 * K, r * 2 * K + keep), (q0 + r) * keep);
        indices.set(idx.subarray(r * 2 * K, r * 2 * K + keep), (q0 + r) * keep);
      }
    }
    await synchronize(gpu);
  } finally {
    for (const t of [scoreBuf, qBuf, cBuf, ...pairs.flatMap((p) => [p.values, p.indices])]) {
      t.destroy();
    }
  }
  return { k: keep, indices, scores };
}

// ---------------------------------------------------------------------------------------------
// Cache of encoded texts.

/** The embedding cache directory: `$SELFMARGIN_CACHE_DIR/embeddings`, else ~/.cache/selfmargin. */
export function embeddingCacheDir(): string {
  const env = (k: string) => Deno.env.get(k);
  const base = env("SELFMARGIN_CACHE_DIR") ??
    (env("XDG_CACHE_HOME") ? `${env("XDG_CACHE_HOME")}/selfmargin` : undefined) ??
    `${env("HOME") ?? "."}/.cache/selfmargin`;
  return `${base}/embeddings`;
}

/**
 * SHA-256 (hex) of a list of texts: each text JSON-quoted on its own line (so boundaries are
 * unambiguous), hashed in blocks of about 8 MB whose digests are hashed together with the count.
 */
export async function hashTexts(texts: readonly string[]): Promise<string> {
  const digests: string[] = [];
  let part: string[] = [];
  let size = 0;
  const close = async () => {
    digests.push(await sha256Hex(part.join("")));
    part = [];
    size = 0;
  };
  for (const t of texts) {
    const line = JSON.stringify(t) + "\n";
    part.push(line);
    size += line.length;
    if (size >= 8_000_000) await close();
  }
  if (part.length || digests.length === 0) await close();
  return await sha256Hex(`texts ${texts.length}\n${digests.join("\n")}`);
}

/**
 * The identity of a model for caching: SHA-256 over its config and every parameter's name,
 * shape and values (read back from the GPU, hashed tensor by tensor).
 */
export async function modelIdentity(model: LoadedEncoder): Promise<string> {
  const lines = [`config ${JSON.stringify(model.config)}`];
  for (const name of [...model.named.keys()].sort()) {
    const t = model.named.get(name)!;
    const data = await t.read();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    lines.push(`${name} [${t.shape}] ${await sha256Hex(bytes)}`);
  }
  return await sha256Hex(lines.join("\n"));
}

const tokenizerIds = new WeakMap<TextTokenizer, Promise<string>>();

/**
 * The identity of a tokenizer for caching: SHA-256 of its {@link TextTokenizer.fingerprint}
 * (the `tokenizer.json` and `tokenizer_config.json` content for Hugging Face tokenizers, the
 * Unigram configuration built from the SentencePiece vocabulary for USE-lite). A tokenizer
 * without a fingerprint has no identity (`null`): texts it tokenizes are not cached, since stale
 * embeddings could be reused. Computed once per tokenizer object.
 */
export function tokenizerIdentity(tokenizer: TextTokenizer): Promise<string | null> {
  if (typeof tokenizer.fingerprint !== "function") return Promise.resolve(null);
  let id = tokenizerIds.get(tokenizer);
  if (!id) {
    id = sha256Hex(`${tokenizer.constructor.name}\nfingerprint ${tokenizer.fingerprint()}`);
    tokenizerIds.set(tokenizer, id);
  }
  return id;
}

/** What a cache entry is keyed by; the header of `<key>.json` records it. */
export interface EmbeddingCacheKey {
  /** Model identity ({@link modelIdentity} or a given id). */
  model: string;
  /** Tokenizer identity ({@link tokenizerIdentity}). */
  tokenizer: string;
  /**
   * SHA-256 of the encoder config (pooling, normalisation, padding id, positions...), the text
   * format (prompts, lower-casing) and the texts' role: part of the key even when the model
   * identity is given.
   */
  encoder: string;
  /** Longest input in tokens the texts were encoded with. */
  maxLength: number;
  /** {@link hashTexts} of the texts. */
  textsHash: string;
  /** Number of texts. */
  count: number;
}

const CACHE_FORMAT = 2;

/** The file name stem of a cache entry: SHA-256 of the key's fields. */
export async function cacheEntryName(key: EmbeddingCacheKey): Promise<string> {
  return await sha256Hex(
    JSON.stringify([
      CACHE_FORMAT,
      key.model,
      key.tokenizer,
      key.encoder,
      key.maxLength,
      key.textsHash,
      key.count,
    ]),
  );
}

/**
 * Reads a cache entry; returns null (after calling `note` with the reason) when it is absent,
 * unreadable, or does not match the key.
 */
export async function readEmbeddingCache(
  dir: string,
  key: EmbeddingCacheKey,
  note: (message: string) => void = () => {},
): Promise<EmbeddingMatrix | null> {
  const stem = `${dir}/${await cacheEntryName(key)}`;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(await Deno.readTextFile(`${stem}.json`));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      note(`ignoring embedding cache ${stem}.json: ${(e as Error).message}`);
    }
    return null;
  }
  const mismatch = header.format !== CACHE_FORMAT
    ? "format"
    : header.model !== key.model
    ? "model"
    : header.tokenizer !== key.tokenizer
    ? "tokenizer"
    : header.encoder !== key.encoder
    ? "encoder config"
    : header.maxLength !== key.maxLength
    ? "max length"
    : header.textsHash !== key.textsHash
    ? "texts"
    : header.count !== key.count
    ? "count"
    : !(Number.isInteger(header.dim) && (header.dim as number) > 0)
    ? "dim"
    : "";
  if (mismatch) {
    note(`ignoring embedding cache ${stem}.json: its ${mismatch} does not match`);
    return null;
  }
  const dim = header.dim as number;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${stem}.f32`);
  } catch (e) {
    note(`ignoring embedding cache ${stem}.f32: ${(e as Error).message}`);
    return null;
  }
  if (bytes.byteLength !== key.count * dim * 4) {
    note(
      `ignoring embedding cache ${stem}.f32: ${bytes.byteLength} bytes, expected ` +
        `${key.count * dim * 4}`,
    );
    return null;
  }
  const data = new Float32Array(key.count * dim);
  new Uint8Array(data.buffer).set(bytes);
  return { count: key.count, dim, data };
}

/** Writes a cache entry atomically (temporary files renamed into place, the header last). */
export async function writeEmbeddingCache(
  dir: string,
  key: EmbeddingCacheKey,
  emb: EmbeddingMatrix,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const stem = `${dir}/${await cacheEntryName(key)}`;
  const tmp = `.tmp-${crypto.randomUUID()}`;
  const header = { format: CACHE_FORMAT, ...key, dim: emb.dim, created: new Date().toISOString() };
  try {
    await Deno.writeFile(
      `${stem}.f32${tmp}`,
      new Uint8Array(emb.data.buffer, emb.data.byteOffset, emb.count * emb.dim * 4),
    );
    await Deno.rename(`${stem}.f32${tmp}`, `${stem}.f32`);
    await Deno.writeTextFile(`${stem}.json${tmp}`, JSON.stringify(header, null, 1) + "\n");
    await Deno.rename(`${stem}.json${tmp}`, `${stem}.json`);
  } catch (e) {
    await Deno.remove(`${stem}.f32${tmp}`).catch(() => {});
    await Deno.remove(`${stem}.json${tmp}`).catch(() => {});
    throw e;
  }
}

/** Progress of an encoding: its label, texts done of `total`, and tokens so far. */
export type EncodeProgress = (label: string, done: number, total: number, tokens: number) => void;

/** Options of {@link encodeCached}. */
export interface EncodeCachedOptions {
  /** Cache directory; null disables the cache. Default {@link embeddingCacheDir}. */
  cacheDir?: string | null;
  /** Model identity; default {@link modelIdentity} (hashes the weights). */
  modelId?: string;
  /** Longest input in tokens; default the model's. */
  maxLength?: number;
  /** Texts per batch. Default 64. */
  batchSize?: number;
  /** What is being encoded (e.g. `encode corpus`), for notes and progress. */
  label?: string;
  /**
   * Called as encoding goes: the label, texts done of the total, tokens so far; `done ===
   * total` once at the end. Scripts draw a progress bar from it ({@link EncodeProgress}).
   */
  onProgress?: EncodeProgress;
  /** Where notes go (cache hits, ignored cache files). Default: nowhere. */
  log?: (message: string) => void;
  /** Queries or documents: the model's prompt for the role is prepended. Default: none. */
  role?: TextRole;
}

/**
 * Embeddings of `texts` (raw, as the encoder pools them), from the cache when an entry for the
 * same model, tokenizer, encoder config, maximum length and texts exists, else encoded and
 * stored. A tokenizer without an identity ({@link tokenizerIdentity}) bypasses the cache.
 */
export async function encodeCached(
  gpu: Gpu,
  model: LoadedEncoder,
  texts: readonly string[],
  opts: EncodeCachedOptions = {},
): Promise<EmbeddingMatrix & { cached: boolean }> {
  const log = opts.log ?? (() => {});
  const maxLength = Math.min(opts.maxLength ?? model.maxLength, model.maxLength);
  const dir = opts.cacheDir === undefined ? embeddingCacheDir() : opts.cacheDir;
  let key: EmbeddingCacheKey | null = null;
  const tokenizer = dir === null ? null : await tokenizerIdentity(model.tokenizer);
  if (dir !== null && tokenizer === null) {
    log(`${opts.label ?? "encode"}: the tokenizer has no fingerprint, so the cache is not used`);
  }
  if (dir !== null && tokenizer !== null) {
    key = {
      model: opts.modelId ?? await modelIdentity(model),
      tokenizer,
      encoder: await sha256Hex(
        JSON.stringify([model.config, model.text ?? null, opts.role ?? null]),
      ),
      maxLength,
      textsHash: await hashTexts(texts),
      count: texts.length,
    };
    const hit = await readEmbeddingCache(dir, key, log);
    if (hit) {
      log(`${opts.label ?? "encode"}: ${texts.length} embeddings from the cache (${dir})`);
      return { ...hit, cached: true };
    }
  }
  const label = opts.label ?? "encode";
  let tokensSoFar = 0;
  const emb = await encodeTexts(gpu, model, texts, {
    batchSize: opts.batchSize,
    maxLength,
    role: opts.role,
    onProgress: (done, tokens) => {
      tokensSoFar = tokens;
      if (done < texts.length) opts.onProgress?.(label, done, texts.length, tokens);
    },
  });
  opts.onProgress?.(label, texts.length, texts.length, tokensSoFar);
  if (emb.truncated > 0) {
    log(
      `${
        opts.label ?? "encode"
      }: ${emb.truncated} of ${texts.length} texts truncated to ${maxLength} tokens`,
    );
  }
  const out = { count: emb.count, dim: emb.dim, data: emb.data };
  if (dir !== null && key) {
    try {
      await writeEmbeddingCache(dir, key, out);
    } catch (e) {
      log(`could not write the embedding cache in ${dir}: ${(e as Error).message}`);
    }
  }
  return { ...out, cached: false };
}

// ---------------------------------------------------------------------------------------------
// Retrieval and re-ranking from texts.

/** Options of {@link denseRetrieve}. */
export interface DenseRetrieveOptions extends Omit<EncodeCachedOptions, "label"> {
  /** The documents. */
  corpus: readonly Doc[];
  /** Queries: id -> text. */
  queries: ReadonlyMap<string, string>;
  /** Documents retrieved per query. Default 1000. */
  k?: number;
  /**
   * Longest query in tokens; default the model's maximum (`maxLength` applies to documents:
   * queries are short, and cutting them to a document budget would lose their words).
   */
  queryMaxLength?: number;
  /** Documents per chunk and score budget of the GPU retrieval. */
  retrieve?: RetrieveOptions;
}

/**
 * Encodes corpus and queries (through the cache), normalises the embeddings, and retrieves the
 * top k documents of every query by cosine similarity, exactly.
 *
 * @example
 * ```ts
 * const model = await loadEncoder(gpu, "use-lite");
 * const run = await denseRetrieve(gpu, model, { corpus, queries, k: 100 });
 * ```
 */
export async function denseRetrieve(
  gpu: Gpu,
  model: LoadedEncoder,
  opts: DenseRetrieveOptions,
): Promise<Run> {
  const modelId = opts.cacheDir === null ? "" : opts.modelId ?? await modelIdentity(model);
  const common = { ...opts, modelId };
  const docs = normalizeRows(
    await encodeCached(gpu, model, opts.corpus.map(docText), {
      ...common,
      label: "encode corpus",
      role: "document",
    }),
  );
  const qids = [...opts.queries.keys()];
  const qs = normalizeRows(
    await encodeCached(gpu, model, qids.map((q) => opts.queries.get(q)!), {
      ...common,
      maxLength: opts.queryMaxLength,
      label: "encode queries",
      role: "query",
    }),
  );
  const top = await retrieveWithEmbeddings(gpu, qs, docs, opts.k ?? 1000, opts.retrieve);
  return retrievedRun(top, qids, (j) => opts.corpus[j].id);
}

/**
 * A {@link Retrieved} top-k as a run: row r is query `qids[r]`, document row j is
 * `docId(j)`, scores as given (already in rank order).
 */
export function retrievedRun(
  top: Retrieved,
  qids: readonly string[],
  docId: (row: number) => string,
): Run {
  const run: Run = new Map();
  qids.forEach((qid, r) => {
    const docIds: string[] = [];
    const scores = new Float64Array(top.k);
    for (let j = 0; j < top.k; j++) {
      docIds.push(docId(top.indices[r * top.k + j]));
      scores[j] = top.scores[r * top.k + j];
    }
    run.set(qid, { docIds, scores });
  });
  return run;
}

/**
 * Re-scores candidate runs by dot product: each query's candidates (its best `depth` by the
 * candidate score, trec_eval order, when `depth` is given) get the dot product of their
 * embeddings, accumulated in float64. Candidates missing from `docRow` are an error; queries
 * missing from `queryRow` are left out.
 */
export function rerankWithEmbeddings(
  queryEmb: EmbeddingMatrix,
  queryRow: ReadonlyMap<string, number>,
  docEmb: EmbeddingMatrix,
  docRow: ReadonlyMap<string, number>,
  candidates: Run,
  depth = Infinity,
): Run {
  const D = queryEmb.dim;
  if (docEmb.dim !== D) {
    throw new RangeError(`query width ${D} differs from document width ${docEmb.dim}`);
  }
  const run: Run = new Map();
  for (const [qid, ranking] of candidates) {
    const qr = queryRow.get(qid);
    if (qr === undefined) continue;
    const q = queryEmb.data.subarray(qr * D, (qr + 1) * D);
    const docIds = topCandidates(ranking.docIds, ranking.scores, depth);
    const scores = new Float64Array(docIds.length);
    docIds.forEach((id, j) => {
      const dr = docRow.get(id);
      if (dr === undefined) {
        throw new Error(`candidate document '${id}' (query ${qid}) is not in the corpus`);
      }
      const d = docEmb.data.subarray(dr * D, (dr + 1) * D);
      let s = 0;
      for (let i = 0; i < D; i++) s += q[i] * d[i];
      scores[j] = Math.fround(s);
    });
    run.set(qid, { docIds, scores });
  }
  return run;
}

// The best `depth` documents by score (ties: document id descending, as trec_eval ranks).
function topCandidates(ids: readonly string[], scores: ArrayLike<number>, depth: number): string[] {
  if (ids.length <= depth) return [...ids];
  const order = ids.map((_, i) => i).sort((a, b) =>
    scores[b] - scores[a] || (ids[a] < ids[b] ? 1 : ids[a] > ids[b] ? -1 : 0)
  );
  return order.slice(0, depth).map((i) => ids[i]);
}

/** Options of {@link rerank}. */
export interface RerankOptions extends Omit<EncodeCachedOptions, "label"> {
  /** The documents (candidates are looked up here by id). */
  corpus: readonly Doc[];
  /** Queries: id -> text (candidate queries missing here are left out). */
  queries: ReadonlyMap<string, string>;
  /** The run to re-rank, e.g. BM25's top 100. */
  candidates: Run;
  /** Re-rank only each query's best `depth` candidates. Default all. */
  depth?: number;
  /** Longest query in tokens; default the model's maximum (`maxLength` applies to documents). */
  queryMaxLength?: number;
}

/**
 * Re-ranks a candidate run with an encoder: encodes the queries and only the candidate
 * documents (through the cache), and scores each (query, candidate) pair by cosine similarity.
 *
 * @example
 * ```ts
 * const bm25 = Bm25Index.build(corpus).retrieve(queries, 100);
 * const run = await rerank(gpu, model, { corpus, queries, candidates: bm25 });
 * ```
 */
export async function rerank(gpu: Gpu, model: LoadedEncoder, opts: RerankOptions): Promise<Run> {
  const byId = new Map<string, number>();
  opts.corpus.forEach((d, i) => byId.set(d.id, i));
  const depth = opts.depth ?? Infinity;
  const needed = new Set<string>();
  const qids: string[] = [];
  for (const [qid, r] of opts.candidates) {
    if (!opts.queries.has(qid)) continue;
    qids.push(qid);
    for (const id of topCandidates(r.docIds, r.scores, depth)) {
      if (!byId.has(id)) {
        throw new Error(`candidate document '${id}' (query ${qid}) is not in the corpus`);
      }
      needed.add(id);
    }
  }
  // Candidate documents in corpus order, so the same candidates hit the same cache entry.
  const docIds = [...needed].sort((a, b) => byId.get(a)! - byId.get(b)!);
  const modelId = opts.cacheDir === null ? "" : opts.modelId ?? await modelIdentity(model);
  const common = { ...opts, modelId };
  const docs = normalizeRows(
    await encodeCached(gpu, model, docIds.map((id) => docText(opts.corpus[byId.get(id)!])), {
      ...common,
      label: "encode candidates",
      role: "document",
    }),
  );
  const qs = normalizeRows(
    await encodeCached(gpu, model, qids.map((q) => opts.queries.get(q)!), {
      ...common,
      maxLength: opts.queryMaxLength,
      label: "encode queries",
      role: "query",
    }),
  );
  return rerankWithEmbeddings(
    qs,
    new Map(qids.map((q, i) => [q, i])),
    docs,
    new Map(docIds.map((id, i) => [id, i])),
    opts.candidates,
    depth,
  );
}

/**
 * A corpus encoded in shards: shard i of n holds the documents [floor(i·N/n), floor((i+1)·N/n))
 * in corpus order, written as one Parquet file of ids and L2-normalised embeddings
 * (`shards/shard-0001-of-0004.parquet`), so n processes on n GPUs or machines encode one corpus.
 * A shard is encoded in parts written as they finish (`...part-00003.parquet`); a rerun skips a
 * finished shard and resumes a half-done one after its last complete part. Every file carries
 * the encoder's identity (weights, tokenizer, config, prompts, length) and the corpus's
 * fingerprint: shards that disagree are refused with a clear error.
 *
 * @example
 * ```ts
 * const id = await encoderIdentity(model, 128);
 * await encodeShard(gpu, model, corpus, { out: "index", shard: 0, shards: 2, identity: id });
 * ```
 *
 * @module
 */
import { DataFormatError, type Doc, docText } from "../data/types.ts";
import { modelIdentity, normalizeRows, tokenizerIdentity } from "../eval/dense.ts";
import type { Gpu } from "../gpu/device.ts";
import { encodeTexts } from "../models/encode.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { sha256Hex } from "../util/hash.ts";
import { exists } from "../util/fs.ts";
import {
  type EmbeddingRows,
  readEmbeddingMeta,
  readEmbeddingParquet,
  writeEmbeddingParquet,
} from "./parquet.ts";

/**
 * Raised when shards (or an index) were made by another encoder or from another corpus: bad
 * input, reported in one line naming the file (a {@link DataFormatError}).
 */
export class ShardMismatchError extends DataFormatError {
  /**
   * The refusal.
   * @param path the file that disagrees
   * @param detail what differs and what to do
   */
  constructor(path: string, detail: string) {
    super(path, 0, detail);
    this.name = "ShardMismatchError";
  }
}

/**
 * The identity of an encoder as it encodes documents: its weights, tokenizer, config, text
 * format and maximum length, hashed. Shards with equal identities hold comparable embeddings.
 */
export async function encoderIdentity(model: LoadedEncoder, maxLength: number): Promise<string> {
  return await sha256Hex(JSON.stringify({
    weights: await modelIdentity(model),
    tokenizer: await tokenizerIdentity(model.tokenizer),
    config: model.config,
    text: model.text ?? null,
    maxLength,
  }));
}

/** The fingerprint of a corpus: its size and its ids in order. */
export async function corpusFingerprint(corpus: readonly Doc[]): Promise<string> {
  return await sha256Hex(`${corpus.length}\n${corpus.map((d) => d.id).join("\n")}`);
}

/** Documents [start, end) of shard `i` of `n` over `count` documents. */
export function shardRange(count: number, i: number, n: number): [number, number] {
  if (!(Number.isInteger(n) && n >= 1 && Number.isInteger(i) && i >= 0 && i < n)) {
    throw new RangeError(`shard ${i + 1} of ${n} does not exist`);
  }
  return [Math.floor(i * count / n), Math.floor((i + 1) * count / n)];
}

/** The file of shard `i` (0-based) of `n`, under `out`. */
export function shardPath(out: string, i: number, n: number): string {
  const w = (x: number) => String(x).padStart(4, "0");
  return `${out}/shards/shard-${w(i + 1)}-of-${w(n)}.parquet`;
}

/** Where part `part` (0-based) of shard `i` of `n` is written while the shard is encoded. */
export function partPath(out: string, i: number, n: number, part: number): string {
  return shardPath(out, i, n).replace(
    /\.parquet$/,
    `.part-${String(part).padStart(5, "0")}.parquet`,
  );
}

/** Options of {@link encodeShard}. */
export interface EncodeShardOptions {
  /** The index directory (shards go to `out/shards/`). */
  out: string;
  /** This shard, 0-based. */
  shard: number;
  /** Number of shards. */
  shards: number;
  /** {@link encoderIdentity} of the model at `maxLength`. */
  identity: string;
  /** Document tokens at most; default the model's. */
  maxLength?: number;
  /** Texts per GPU batch. Default 64. */
  batchSize?: number;
  /** Documents per part file (the unit of resumption). Default 4096. */
  partSize?: number;
  /**
   * Called as documents are encoded: done and total of this shard, and how many of the done
   * were not encoded by this call (a finished shard, or complete parts resumed), so that a rate
   * counts only `done - skipped`.
   */
  onProgress?: (done: number, total: number, skipped: number) => void;
  /** Notes (skipped, resumed). */
  log?: (message: string) => void;
}

/** What {@link encodeShard} did. */
export interface ShardResult {
  /** The shard's file. */
  path: string;
  /** Documents in it. */
  documents: number;
  /** Documents encoded by this call (0 when the shard was finished already). */
  encoded: number;
  /** Real tokens encoded by this call. */
  tokens: number;
}

/**
 * Checks a shard or part file's metadata against `expect`'s encoder identity and corpus: another
 * one is a {@link ShardMismatchError} naming the file, both values, and `advice`.
 */
function checkMeta(
  path: string,
  meta: Record<string, string>,
  expect: ShardExpectation,
  advice: string,
) {
  for (
    const [key, what, value] of [
      ["model", "encoder identity", expect.identity],
      ["corpus", "corpus fingerprint", expect.corpus],
    ] as const
  ) {
    if (meta[key] !== value) {
      throw new ShardMismatchError(
        path,
        `its ${what} ${meta[key] ?? "(none)"} differs from ${expect.source}'s ${value}: every ` +
          `shard of an index must be encoded with the index's model, maximum length, prompts ` +
          `and corpus; ${advice}`,
      );
    }
  }
}

/**
 * Encodes shard `opts.shard` of `opts.shards` of `corpus` into its Parquet file (embeddings
 * L2-normalised, as retrieval ranks by cosine): skipped when the file is there and agrees,
 * resumed after the last complete part when parts are there.
 */
export async function encodeShard(
  gpu: Gpu,
  model: LoadedEncoder,
  corpus: readonly Doc[],
  opts: EncodeShardOptions,
): Promise<ShardResult> {
  const log = opts.log ?? (() => {});
  const { shard: i, shards: n } = opts;
  const [start, end] = shardRange(corpus.length, i, n);
  const path = shardPath(opts.out, i, n);
  const want = {
    model: opts.identity,
    corpus: await corpusFingerprint(corpus),
    shard: `${i + 1}/${n}`,
    documents: String(end - start),
  };
  const expect = { identity: want.model, corpus: want.corpus, source: "this run" };
  const advice = "use another --out, or remove the shards";
  await Deno.mkdir(`${opts.out}/shards`, { recursive: true });
  if (await exists(path)) {
    checkMeta(path, await readEmbeddingMeta(path), expect, advice);
    log(`shard ${i + 1}/${n}: already encoded (${path})`);
    opts.onProgress?.(end - start, end - start, end - start);
    return { path, documents: end - start, encoded: 0, tokens: 0 };
  }
  const partSize = opts.partSize ?? 4096;
  const parts = Math.ceil((end - start) / partSize);
  let encoded = 0, tokens = 0, done = 0, kept = 0, skipped = 0;
  const pieces: EmbeddingRows[] = [];
  for (let p = 0; p < parts; p++) {
    const a = start + p * partSize, b = Math.min(end, a + partSize);
    const file = partPath(opts.out, i, n, p);
    const meta = { ...want, part: String(p), first: String(a), count: String(b - a) };
    if (await exists(file)) {
      const rows = await readEmbeddingParquet(file);
      checkMeta(file, rows.meta, expect, advice);
      if (rows.meta.first === meta.first && rows.ids.length === b - a) {
        kept++;
        pieces.push(rows);
        done += b - a;
        skipped += b - a;
        opts.onProgress?.(done, end - start, skipped);
        continue;
      }
    }
    const docs = corpus.slice(a, b);
    const emb = await encodeTexts(gpu, model, docs.map(docText), {
      batchSize: opts.batchSize,
      maxLength: opts.maxLength,
      role: "document",
      onProgress: (k) => opts.onProgress?.(done + k, end - start, skipped),
    });
    normalizeRows(emb);
    const rows = { ids: docs.map((d) => d.id), dim: emb.dim, data: emb.data, meta };
    await writeEmbeddingParquet(file, rows);
    pieces.push(rows);
    encoded += b - a;
    tokens += emb.tokens;
    done += b - a;
  }
  if (kept) log(`shard ${i + 1}/${n}: resumed, ${kept} of ${parts} parts were already encoded`);
  const dim = pieces[0]?.dim ?? model.config.hidden;
  const data = new Float32Array((end - start) * dim);
  let at = 0;
  for (const r of pieces) {
    data.set(r.data, at);
    at += r.data.length;
  }
  await writeEmbeddingParquet(path, { ids: pieces.flatMap((r) => r.ids), dim, data, meta: want });
  for (let p = 0; p < parts; p++) await Deno.remove(partPath(opts.out, i, n, p)).catch(() => {});
  return { path, documents: end - start, encoded, tokens };
}

/** What every shard of an index must carry: the manifest's encoder identity and corpus. */
export interface ShardExpectation {
  /** The encoder identity (`index.json` `identity`; a shard's `model` metadata). */
  identity: string;
  /** The corpus fingerprint (`index.json` `corpus`; a shard's `corpus` metadata). */
  corpus: string;
  /** Where the expectation comes from, for errors (e.g. `INDEX/index.json`). */
  source: string;
}

/**
 * Reads the shards of an index of `n` shards one at a time, in corpus order. Every shard must be there and carry `want`'s identity and corpus
 * (without `want`: the first shard's); one that does not is a {@link ShardMismatchError} naming
 * the shard's file and both values. Host memory: one shard's rows at a time (the caller drops
 * each before asking for the next).
 */
export async function* eachShard(
  out: string,
  n: number,
  want?: ShardExpectation,
): AsyncGenerator<EmbeddingRows> {
  let expect = want;
  let dim: number | undefined;
  for (let i = 0; i < n; i++) {
    const path = shardPath(out, i, n);
    if (!(await exists(path))) {
      throw new ShardMismatchError(
        path,
        `shard ${i + 1} of ${n} is missing: encode it (deno task index --shard ${
          i + 1
        }/${n}) first`,
      );
    }
    const rows = await readEmbeddingParquet(path);
    if (!expect) {
      expect = {
        identity: rows.meta.model,
        corpus: rows.meta.corpus,
        source: shardPath(out, 0, n),
      };
    }
    dim ??= rows.dim;
    if (rows.dim !== dim) {
      throw new ShardMismatchError(
        path,
        `holds ${rows.dim}-d embeddings where the shards before it hold ${dim}-d ones`,
      );
    }
    checkMeta(
      path,
      rows.meta,
      expect,
      "re-encode this shard (remove it and rerun deno task index)",
    );
    yield rows;
  }
}

/**
 * Reads every shard of an index of `n` shards (all must be there and agree with each other; see
 * {@link eachShard}), concatenated in corpus order. Host memory: the whole corpus's embeddings
 * and ids at once; large indexes should go shard by shard with {@link eachShard}.
 */
export async function readShards(out: string, n: number): Promise<EmbeddingRows> {
  const parts: EmbeddingRows[] = [];
  for await (const rows of eachShard(out, n)) parts.push(rows);
  const dim = parts[0].dim;
  const data = new Float32Array(parts.reduce((s, r) => s + r.data.length, 0));
  let at = 0;
  for (const r of parts) {
    data.set(r.data, at);
    at += r.data.length;
  }
  return { ids: parts.flatMap((r) => r.ids), dim, data, meta: parts[0].meta };
}

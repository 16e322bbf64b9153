/**
 * From texts to embeddings: tokenization, batching that wastes little (texts sorted by length,
 * padded per batch), and the encoder forward on the GPU.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { withArena } from "../gpu/tensor.ts";
import type { TextTokenizer } from "../text/tokenizer.ts";
import { encoderForward, type TokenBatch } from "./encoder.ts";
import type { LoadedEncoder } from "./hf.ts";
import type { TextRole } from "./st_layout.ts";

/** Token ids of many texts, and how many were truncated. */
export interface Tokenized {
  /** Ids per text, special tokens included, at most the model's length. */
  ids: number[][];
  /** How many texts lost tokens to truncation. */
  truncated: number;
}

/** A short, printable excerpt of a text for error messages. */
function excerpt(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, " ");
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}...` : flat);
}

/**
 * Tokenizes texts to at most `maxLength` ids each. With `vocabRows` (the rows of the model's
 * word embedding table), an id outside [0, vocabRows) is an error naming the text, instead of a
 * lookup that reads zeros on the GPU.
 */
export function tokenizeAll(
  tokenizer: TextTokenizer,
  texts: readonly string[],
  maxLength: number,
  vocabRows?: number,
): Tokenized {
  let truncated = 0;
  const ids = texts.map((t, i) => {
    const r = tokenizer.encode(t, maxLength);
    if (r.truncated) truncated++;
    if (vocabRows !== undefined) {
      const bad = r.ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < vocabRows));
      if (bad !== undefined) {
        throw new RangeError(
          `text ${i} (${excerpt(t)}): the tokenizer gives id ${bad}, outside the model's ` +
            `${vocabRows}-row word embedding table (is the tokenizer from another model?)`,
        );
      }
    }
    if (r.ids.length > maxLength) {
      throw new RangeError(
        `text ${i} (${excerpt(t)}): the tokenizer gives ${r.ids.length} ids for a maximum of ` +
          `${maxLength}`,
      );
    }
    return r.ids;
  });
  return { ids, truncated };
}

/**
 * Texts as `model` takes them in `role`: its prompt for the role prepended, lower-cased when the
 * model says so (sentence-transformers' `do_lower_case`). No role, no format: unchanged.
 */
export function formatTexts(
  model: LoadedEncoder,
  texts: readonly string[],
  role?: TextRole,
): string[] {
  const f = model.text;
  if (!f) return [...texts];
  const prompt = role === "query" ? f.queryPrompt : role === "document" ? f.documentPrompt : "";
  return texts.map((t) => f.lowerCase ? (prompt + t).toLowerCase() : prompt + t);
}

/**
 * Leading tokens left out of pooling for texts in `role`: the prompt's tokens and the start
 * token before them when the model does not pool its prompt (`include_prompt: false`), counted
 * as sentence-transformers does (the prompt's tokenization less its end token); else 0.
 */
export function promptPoolSkip(model: LoadedEncoder, role?: TextRole): number {
  const f = model.text;
  if (!f || f.includePrompt || role === undefined) return 0;
  const prompt = formatTexts(model, [""], role)[0];
  if (prompt === "") return 0;
  return Math.max(0, model.tokenizer.encode(prompt, model.maxLength).ids.length - 1);
}

/**
 * {@link tokenizeAll} of texts as `model` takes them in `role` ({@link formatTexts}), at most
 * `maxLength` (capped at the model's) ids each, with the leading tokens pooling leaves out.
 */
export function tokenizeFor(
  model: LoadedEncoder,
  texts: readonly string[],
  maxLength: number,
  role?: TextRole,
): Tokenized & { poolSkip: number } {
  return {
    ...tokenizeAll(
      model.tokenizer,
      formatTexts(model, texts, role),
      Math.min(maxLength, model.maxLength),
      model.params.wordEmbeddings.shape[0],
    ),
    poolSkip: promptPoolSkip(model, role),
  };
}

/**
 * Pads id lists to one batch (at least one position, so empty texts still get a row);
 * `poolSkip` leading tokens of each are left out of pooling.
 */
export function padBatch(
  ids: readonly (readonly number[])[],
  padId: number,
  poolSkip = 0,
): TokenBatch {
  const seq = Math.max(1, ...ids.map((x) => x.length));
  const batch = ids.length;
  const out = new Int32Array(batch * seq).fill(padId);
  const mask = new Float32Array(batch * seq);
  ids.forEach((row, b) => {
    out.set(row, b * seq);
    mask.fill(1, b * seq, b * seq + row.length);
  });
  return poolSkip > 0 ? { batch, seq, ids: out, mask, poolSkip } : { batch, seq, ids: out, mask };
}

/**
 * Orders texts by token count (longest first) and cuts them into batches of at most
 * `batchSize` texts and `maxTokens` padded tokens, so padding stays small.
 * Returns the original indices of each batch.
 */
export function lengthBatches(
  lengths: readonly number[],
  batchSize: number,
  maxTokens = Infinity,
): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches: number[][] = [];
  let current: number[] = [];
  for (const i of order) {
    const longest = current.length ? lengths[current[0]] : lengths[i];
    if (
      current.length && (current.length >= batchSize || longest * (current.length + 1) > maxTokens)
    ) {
      batches.push(current);
      current = [];
    }
    current.push(i);
  }
  if (current.length) batches.push(current);
  return batches;
}

/** Options of {@link encodeTexts}. */
export interface EncodeOptions {
  /** Texts per batch. Default 64. */
  batchSize?: number;
  /** Padded tokens per batch at most (bounds memory). Default 16384. */
  maxTokens?: number;
  /** Longest input in tokens; default the model's. */
  maxLength?: number;
  /** Called after each batch with the number of texts done and tokens processed. */
  onProgress?: (done: number, tokens: number) => void;
  /**
   * What the texts are: queries or documents get the model's prompt for that role (see
   * {@link formatTexts}). Absent: encoded as given.
   */
  role?: TextRole;
}

/** Embeddings of many texts, row-major [n, dim]. */
export interface Embeddings {
  /** Number of texts. */
  count: number;
  /** Embedding width. */
  dim: number;
  /** Row-major values. */
  data: Float32Array;
  /** How many texts were truncated. */
  truncated: number;
  /** Real (non-padding) tokens encoded. */
  tokens: number;
}

/**
 * Encodes texts with a loaded encoder, in length-sorted batches; rows come back in input order.
 *
 * @example
 * ```ts
 * const model = await loadUseLite(gpu);
 * const { data, dim } = await encodeTexts(gpu, model, ["a query", "a document"]);
 * ```
 */
export async function encodeTexts(
  gpu: Gpu,
  model: LoadedEncoder,
  texts: readonly string[],
  opts: EncodeOptions = {},
): Promise<Embeddings> {
  const maxLength = Math.min(opts.maxLength ?? model.maxLength, model.maxLength);
  if (!(Number.isSafeInteger(maxLength) && maxLength >= 1)) {
    throw new RangeError(`encodeTexts: maxLength must be a positive integer, not ${maxLength}`);
  }
  const { ids, truncated, poolSkip } = tokenizeFor(model, texts, maxLength, opts.role);
  const dim = model.config.hidden;
  const data = new Float32Array(texts.length * dim);
  const batches = lengthBatches(
    ids.map((x) => x.length),
    opts.batchSize ?? 64,
    opts.maxTokens ?? 16384,
  );
  let done = 0, tokens = 0;
  for (const indices of batches) {
    const batch = padBatch(indices.map((i) => ids[i]), model.config.padId, poolSkip);
    const rows = await embedBatch(gpu, model, batch);
    indices.forEach((i, r) => data.set(rows.subarray(r * dim, (r + 1) * dim), i * dim));
    done += indices.length;
    tokens += indices.reduce((a, i) => a + ids[i].length, 0);
    opts.onProgress?.(done, tokens);
  }
  return { count: texts.length, dim, data, truncated, tokens };
}

/** Pooled embeddings of one padded batch, read back to the host. */
export function embedBatch(
  gpu: Gpu,
  model: LoadedEncoder,
  batch: TokenBatch,
): Promise<Float32Array> {
  return withArena(async () => {
    const { pooled } = await encoderForward(gpu, model.config, model.params, batch);
    return await pooled.read() as Float32Array;
  }, () => []);
}

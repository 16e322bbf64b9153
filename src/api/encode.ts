/**
 * `encode(texts, options)`: texts to embeddings in one call, for library users. Models are
 * loaded once per name and kept for the life of the process (see {@link clearEncoderCache}).
 *
 * @module
 */
import { getGpu } from "../gpu/device.ts";
import { encodeTexts } from "../models/encode.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { loadEncoder } from "../models/load.ts";

/** Options of {@link encode}. */
export interface EncodeTextsOptions {
  /**
   * The model: a name for `loadEncoder` (`"use-lite"`, a model directory, or a Hugging Face Hub
   * name such as `"sentence-transformers/all-MiniLM-L6-v2"`), or an already loaded encoder.
   * Default `"use-lite"`.
   */
  model?: string | LoadedEncoder;
  /** Texts per GPU batch. Default 64. */
  batchSize?: number;
  /** Longest input in tokens (at most the model's); longer texts are truncated and counted. */
  maxLength?: number;
}

/** What {@link encode} returns. */
export interface EncodeResult {
  /** One embedding per text, in input order (views of one shared buffer). */
  embeddings: Float32Array[];
  /** Embedding width. */
  dim: number;
  /** How many texts were truncated to the maximum length. */
  truncated: number;
  /** Real (non-padding) tokens encoded. */
  tokens: number;
}

const cache = new Map<string, Promise<LoadedEncoder>>();

/**
 * Loads a model by name, once: later calls with the same name share the loaded encoder. A
 * failed load is not cached.
 */
export function cachedEncoder(name: string): Promise<LoadedEncoder> {
  let p = cache.get(name);
  if (!p) {
    p = getGpu().then((gpu) => loadEncoder(gpu, name));
    cache.set(name, p);
    p.catch(() => cache.delete(name));
  }
  return p;
}

/**
 * Forgets the cached models (their GPU buffers are destroyed), e.g. before loading a large one.
 */
export async function clearEncoderCache(): Promise<void> {
  const models = [...cache.values()];
  cache.clear();
  for (const p of models) {
    const model = await p.catch(() => null);
    for (const t of model?.named.values() ?? []) t.destroy();
  }
}

/**
 * Encodes texts to embeddings on the GPU (USE-lite by default: 512-d, unit length).
 *
 * @example
 * ```ts
 * import { encode } from "./mod.ts";
 * const { embeddings, dim } = await encode(["a query", "a document about it"]);
 * console.log(dim, embeddings[0].length); // 512 512
 * ```
 */
export async function encode(
  texts: readonly string[],
  options: EncodeTextsOptions = {},
): Promise<EncodeResult> {
  if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) {
    throw new TypeError("encode: texts must be an array of strings");
  }
  const spec = options.model ?? "use-lite";
  const model = typeof spec === "string" ? await cachedEncoder(spec) : spec;
  const gpu = await getGpu();
  const out = await encodeTexts(gpu, model, texts, {
    batchSize: options.batchSize,
    maxLength: options.maxLength,
  });
  const embeddings: Float32Array[] = [];
  for (let i = 0; i < out.count; i++) {
    embeddings.push(out.data.subarray(i * out.dim, (i + 1) * out.dim));
  }
  return { embeddings, dim: out.dim, truncated: out.truncated, tokens: out.tokens };
}

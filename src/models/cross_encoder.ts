/**
 * A BERT cross-encoder as a teacher: `[CLS] query [SEP] document [SEP]` through a BERT body,
 * BERT's pooler (tanh dense over [CLS]) and a one-logit classification head, the layout of
 * Hugging Face's `BertForSequenceClassification` with `num_labels` 1 (for instance
 * `cross-encoder/ms-marco-MiniLM-L-6-v2`: weights `bert.*`, `classifier.weight` [1, H],
 * `classifier.bias` [1]). Runs on the GPU with the same encoder as the bi-encoders; checked
 * against an independent float64 reference (tests/cross_encoder_test.ts).
 *
 * @example
 * ```ts
 * const ce = await loadCrossEncoder(gpu, "models/ms-marco-MiniLM-L-6-v2");
 * const scores = await crossEncoderScores(gpu, ce, [["what is x", "x is ..."]]);
 * ```
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";
import type { Gpu } from "../gpu/device.ts";
import { Tensor, withArena } from "../gpu/tensor.ts";
import { linear } from "../ops/matmul.ts";
import { HfTokenizer } from "../text/tokenizer.ts";
import { encoderForward, type TokenBatch } from "./encoder.ts";
import { type LoadedEncoder, loadHfEncoderWithWeights } from "./hf.ts";

/** A loaded cross-encoder: the BERT body with its pooler, and the classifier. */
export interface CrossEncoder {
  /** The body (pooling "pooler", not normalised) and its tokenizer. */
  body: LoadedEncoder & { tokenizer: HfTokenizer };
  /** `classifier.weight` [1, H] (torch layout: out x in). */
  classifierWeight: Tensor;
  /** `classifier.bias` [1]. */
  classifierBias: Tensor;
  /** Longest pair in tokens, special tokens included. */
  maxLength: number;
}

/** Options of {@link loadCrossEncoder}. */
export interface LoadCrossEncoderOptions {
  /** Longest pair in tokens (default: the model's, at most 512). */
  maxLength?: number;
}

/**
 * Loads a BERT cross-encoder from a Hugging Face directory (`config.json`, `model.safetensors`
 * or a sharded index, `tokenizer.json`). Throws {@link DataFormatError} naming the directory when
 * it is not one: another family, no pooler, or a classifier that is not one logit over [CLS].
 */
export async function loadCrossEncoder(
  gpu: Gpu,
  dir: string,
  opts: LoadCrossEncoderOptions = {},
): Promise<CrossEncoder> {
  const { model: body, weights } = await loadHfEncoderWithWeights(gpu, dir, {
    pooling: "pooler",
    normalize: false,
    maxLength: opts.maxLength,
  }).catch((e) => {
    if (/pooler/.test((e as Error).message)) {
      throw new DataFormatError(dir, 0, `a cross-encoder needs BERT's pooler (bert.pooler.dense)`);
    }
    throw e;
  });
  const free = () => {
    for (const t of body.named.values()) t.destroy();
  };
  if (body.config.family !== "bert" || !(body.tokenizer instanceof HfTokenizer)) {
    free();
    throw new DataFormatError(dir, 0, `a cross-encoder must be BERT, not ${body.config.family}`);
  }
  // The head is not part of the body: its tensors come from the same read of the files.
  const H = body.config.hidden;
  const take = (name: string, shape: number[]) => {
    const t = weights.get(name);
    if (!t) {
      free();
      throw new DataFormatError(dir, 0, `missing ${name}: not a sequence-classification model`);
    }
    if (t.shape.join() !== shape.join()) {
      free();
      throw new DataFormatError(
        dir,
        0,
        `${name} has shape [${t.shape}], expected [${shape}] (a cross-encoder scores with one logit)`,
      );
    }
    return Tensor.from(gpu, t.data, t.shape, "f32", name);
  };
  const classifierWeight = take("classifier.weight", [1, H]);
  const classifierBias = take("classifier.bias", [1]);
  return {
    body: body as CrossEncoder["body"],
    classifierWeight,
    classifierBias,
    maxLength: body.maxLength,
  };
}

/** Options of {@link crossEncoderScores}. */
export interface CrossEncoderScoreOptions {
  /** Pairs per GPU batch. Default 32. */
  batchSize?: number;
  /** Longest pair in tokens (at most the model's). */
  maxLength?: number;
  /** Called after each batch with the pairs scored so far. */
  onProgress?: (done: number) => void;
}

/**
 * The cross-encoder's logit for each (query, document) pair, in order (higher: more relevant;
 * `sentence-transformers`' CrossEncoder.predict without an activation).
 */
export async function crossEncoderScores(
  gpu: Gpu,
  ce: CrossEncoder,
  pairs: readonly (readonly [string, string])[],
  opts: CrossEncoderScoreOptions = {},
): Promise<Float32Array> {
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(`batchSize must be a positive integer: ${batchSize}`);
  }
  const maxLength = Math.min(opts.maxLength ?? ce.maxLength, ce.maxLength);
  const out = new Float32Array(pairs.length);
  for (let start = 0; start < pairs.length; start += batchSize) {
    const chunk = pairs.slice(start, start + batchSize);
    const encoded = chunk.map(([q, d]) => ce.body.tokenizer.encodePair(q, d, maxLength));
    const scores = await scoreBatch(gpu, ce, pairBatch(encoded, ce.body.config.padId));
    out.set(scores, start);
    opts.onProgress?.(start + chunk.length);
  }
  return out;
}

/** Pads tokenized pairs into one batch with segment ids. */
export function pairBatch(
  pairs: readonly { ids: number[]; typeIds: number[] }[],
  padId: number,
): TokenBatch {
  const seq = Math.max(1, ...pairs.map((p) => p.ids.length));
  const batch = pairs.length;
  const ids = new Int32Array(batch * seq).fill(padId);
  const typeIds = new Int32Array(batch * seq);
  const mask = new Float32Array(batch * seq);
  pairs.forEach((p, b) => {
    ids.set(p.ids, b * seq);
    typeIds.set(p.typeIds, b * seq);
    mask.fill(1, b * seq, b * seq + p.ids.length);
  });
  return { batch, seq, ids, mask, typeIds };
}

/** One padded batch's logits, read back. */
function scoreBatch(gpu: Gpu, ce: CrossEncoder, batch: TokenBatch): Promise<Float32Array> {
  return withArena(async () => {
    const { pooled } = await encoderForward(gpu, ce.body.config, ce.body.params, batch);
    const logits = await linear(pooled, ce.classifierWeight, ce.classifierBias, { transB: true });
    return await logits.read() as Float32Array;
  }, () => []);
}

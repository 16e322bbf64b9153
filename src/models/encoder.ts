/**
 * The config-driven transformer encoder on WebGPU: embeddings, N transformer layers (post- or
 * pre-LayerNorm, GELU or ReLU, learned or sinusoidal positions, token types, MPNet's relative
 * attention bias), pooling (CLS, mean, BERT pooler) and optional L2 normalisation. Every op
 * records its hand-written backward on the tape when one is given, so the same forward serves
 * training.
 *
 * Dimension legend: B sequences, S tokens each (padded), H hidden width, nh heads of d = H/nh,
 * F feed-forward width.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { gelu, relu, tanh } from "../ops/activation.ts";
import { add, biasAdd, scale } from "../ops/elementwise.ts";
import { embedding } from "../ops/embedding.ts";
import { layerNorm } from "../ops/layernorm.ts";
import { swap12, takeRow } from "../ops/layout.ts";
import { linear, matmul } from "../ops/matmul.ts";
import { l2Normalize, maskedLast, maskedMax, maskedMean } from "../ops/reduce.ts";
import { softmax } from "../ops/softmax.ts";
import type { EncoderConfig } from "./config.ts";

/** A dense layer: y = x·W + b, with W stored [in, out], or [out, in] when `outIn` (PyTorch). */
export interface Linear {
  /** The weight matrix. */
  weight: Tensor;
  /** The bias, [out]. */
  bias: Tensor;
  /** Whether the weight is stored [out, in] (torch.nn.Linear) rather than [in, out]. */
  outIn: boolean;
}

/** A LayerNorm's scale and shift. */
export interface Norm {
  /** gamma, [H]. */
  weight: Tensor;
  /** beta, [H]. */
  bias: Tensor;
}

/**
 * One transformer layer's parameters. The attention width (query/key/value outputs) may differ
 * from the layer's input and output widths (USE-lite's first layer attends at 256 and widens to
 * 512); widths are read from the weights.
 */
export interface LayerParams {
  /** Query, key and value projections. */
  query: Linear;
  /** Key projection. */
  key: Linear;
  /** Value projection. */
  value: Linear;
  /** Attention output projection. */
  output: Linear;
  /** LayerNorm around the attention block. */
  attentionNorm: Norm;
  /** Feed-forward in (H -> F). */
  ffnIn: Linear;
  /** Feed-forward out (F -> H). */
  ffnOut: Linear;
  /** LayerNorm around the feed-forward block. */
  ffnNorm: Norm;
  /** Projects the residual when the layer changes width (pre-LN only; USE-lite layer 0). */
  residual?: Linear;
}

/** All parameters of an encoder, by role. */
export interface EncoderParams {
  /** Token embeddings [V, H]. */
  wordEmbeddings: Tensor;
  /** Learned position embeddings [P, H] (absent for sinusoidal positions). */
  positionEmbeddings?: Tensor;
  /** Token type embeddings [T, H] (type 0 is used). */
  tokenTypeEmbeddings?: Tensor;
  /** LayerNorm after the embeddings (post-LN families). */
  embeddingNorm?: Norm;
  /** MPNet's relative attention bias table [buckets, nh]. */
  relativeAttentionBias?: Tensor;
  /** The layers. */
  layers: LayerParams[];
  /** A tanh dense head after pooling: BERT's pooler (over CLS), USE-lite's head (over the mean). */
  pooler?: Linear;
  /** A final LayerNorm (pre-LN families). */
  finalNorm?: Norm;
}

/** A padded batch of token ids. */
export interface TokenBatch {
  /** Number of sequences. */
  batch: number;
  /** Padded length. */
  seq: number;
  /** Token ids [batch, seq]. */
  ids: Int32Array;
  /** 1 for real tokens, 0 for padding, [batch, seq]. */
  mask: Float32Array;
  /**
   * Token type (segment) ids [batch, seq]: 0 for the first text, 1 for the second of a pair
   * (cross-encoders). Absent: all 0.
   */
  typeIds?: Int32Array;
  /**
   * Leading tokens of every sequence left out of pooling (a prompt, when the model's pooling
   * excludes it: sentence-transformers' `include_prompt: false`). Default 0.
   */
  poolSkip?: number;
}

/** Options of {@link encoderForward}. */
export interface ForwardOptions {
  /** Record backward steps here (training). */
  tape?: Tape;
}

/** Output width of a dense layer. */
function outWidth(l: Linear): number {
  return l.outIn ? l.weight.shape[0] : l.weight.shape[1];
}

async function dense(x: Tensor, l: Linear, tape?: Tape): Promise<Tensor> {
  return await linear(x, l.weight, l.bias, { transB: l.outIn, tape });
}

/** MPNet's relative position bucket (T5-style, bidirectional), as Hugging Face computes it. */
export function relativePositionBucket(relative: number, buckets = 32, maxDistance = 128): number {
  const half = buckets >> 1;
  let n = -relative;
  let ret = n < 0 ? half : 0;
  n = Math.abs(n);
  const maxExact = half >> 1;
  if (n < maxExact) return ret + n;
  // torch evaluates the log branch in float32; mirror its rounding so boundaries agree.
  const f = Math.fround;
  const scaled = f(
    f(f(Math.log(f(n / maxExact))) / Math.log(maxDistance / maxExact)) * (half - maxExact),
  );
  ret += Math.min(maxExact + Math.trunc(scaled), half - 1);
  return ret;
}

/** The transformer sinusoidal timing signal (Vaswani et al.; tensor2tensor layout). */
export function sinusoidalPositions(seq: number, hidden: number): Float32Array {
  const out = new Float32Array(seq * hidden);
  const half = hidden >> 1;
  const logIncrement = Math.log(1e4) / Math.max(half - 1, 1);
  for (let pos = 0; pos < seq; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.exp(-i * logIncrement);
      out[pos * hidden + i] = Math.sin(angle);
      out[pos * hidden + half + i] = Math.cos(angle);
    }
  }
  return out;
}

/** Host-side position ids for a batch (learned positions). */
function positionIds(cfg: EncoderConfig, b: TokenBatch): Int32Array {
  const pos = new Int32Array(b.batch * b.seq);
  for (let r = 0; r < b.batch; r++) {
    let count = 0;
    for (let s = 0; s < b.seq; s++) {
      const i = r * b.seq + s;
      if (cfg.family === "mpnet" || cfg.family === "roberta") {
        // create_position_ids_from_input_ids: padding tokens sit at padding_idx
        pos[i] = b.ids[i] !== cfg.padId ? ++count + cfg.padId : cfg.padId;
      } else pos[i] = s + cfg.positionOffset;
    }
  }
  return pos;
}

/**
 * Throws unless every id of `ids` (a padded [batch, seq] batch) indexes one of a table's `rows`
 * (a lookup past the end would read zeros on the GPU, where PyTorch raises an IndexError). The
 * message names the id, the sequence, the position and the table.
 */
export function checkIds(
  ids: Int32Array,
  seq: number,
  rows: number,
  what: string,
  table: string,
): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= rows) {
      throw new RangeError(
        `encoder: ${what} ${id} (sequence ${Math.floor(i / seq)}, position ${i % seq}) is ` +
          `outside the ${rows}-row ${table} table`,
      );
    }
  }
}

async function embed(
  gpu: Gpu,
  cfg: EncoderConfig,
  p: EncoderParams,
  b: TokenBatch,
  tape?: Tape,
): Promise<Tensor> {
  const n = b.batch * b.seq;
  checkIds(b.ids, b.seq, p.wordEmbeddings.shape[0], "token id", "word embedding");
  const ids = Tensor.from(gpu, b.ids, [n], "i32");
  // The ids are on the host already: handing them over spares each backward a read-back.
  let x = await embedding(p.wordEmbeddings, ids, { tape, hostIds: b.ids });
  if (cfg.embeddingScale !== 1) x = await scale(x, cfg.embeddingScale, { tape });
  if (cfg.positions === "learned") {
    if (!p.positionEmbeddings) throw new Error("encoder: learned positions need a table");
    const hostPos = positionIds(cfg, b);
    checkIds(hostPos, b.seq, p.positionEmbeddings.shape[0], "position id", "position embedding");
    const pos = Tensor.from(gpu, hostPos, [n], "i32");
    x = await add(x, await embedding(p.positionEmbeddings, pos, { tape, hostIds: hostPos }), {
      tape,
    });
  } else {
    const width = p.wordEmbeddings.shape[1];
    const signal = Tensor.from(gpu, sinusoidalPositions(b.seq, width), [b.seq * width]);
    x = await biasAdd(x.reshape([b.batch, b.seq * width]), signal, { tape });
    x = x.reshape([n, width]);
  }
  if (b.typeIds && !p.tokenTypeEmbeddings) {
    throw new RangeError("encoder: token type ids given, but the model has no token type table");
  }
  if (p.tokenTypeEmbeddings) {
    if (b.typeIds && b.typeIds.length !== n) {
      throw new RangeError(`encoder: ${b.typeIds.length} token type ids for ${n} positions`);
    }
    const hostTypes = b.typeIds ?? new Int32Array(n);
    checkIds(hostTypes, b.seq, p.tokenTypeEmbeddings.shape[0], "token type", "token type");
    const types = b.typeIds
      ? Tensor.from(gpu, hostTypes, [n], "i32")
      : Tensor.zeros(gpu, [n], "i32");
    x = await add(x, await embedding(p.tokenTypeEmbeddings, types, { tape, hostIds: hostTypes }), {
      tape,
    });
  }
  if (p.embeddingNorm) {
    x = await layerNorm(x, p.embeddingNorm.weight, p.embeddingNorm.bias, {
      eps: cfg.layerNormEps,
      tape,
    });
  }
  return x;
}

async function relativeBias(
  gpu: Gpu,
  cfg: EncoderConfig,
  table: Tensor,
  seq: number,
  tape?: Tape,
): Promise<Tensor> {
  const buckets = new Int32Array(seq * seq);
  for (let i = 0; i < seq; i++) {
    for (let j = 0; j < seq; j++) {
      buckets[i * seq + j] = relativePositionBucket(
        j - i,
        cfg.relativeAttentionBuckets,
        cfg.relativeAttentionMaxDistance,
      );
    }
  }
  const ids = Tensor.from(gpu, buckets, [seq * seq], "i32");
  const nh = cfg.heads;
  // [S*S, nh] -> [1, S*S, nh, 1] -> swap -> [1, nh, S*S, 1] = [nh, S, S]
  const gathered = await embedding(table, ids, { tape, hostIds: buckets });
  const swapped = await swap12(gathered.reshape([1, seq * seq, nh, 1]), { tape });
  return swapped.reshape([nh * seq * seq]);
}

async function attention(
  cfg: EncoderConfig,
  l: LayerParams,
  x: Tensor,
  mask: Tensor,
  b: TokenBatch,
  bias: Tensor | null,
  tape?: Tape,
): Promise<Tensor> {
  const { batch: B, seq: S } = b;
  const width = outWidth(l.query);
  const nh = cfg.heads, d = width / nh;
  const heads = async (lin: Linear) =>
    (await swap12((await dense(x, lin, tape)).reshape([B, S, nh, d]), { tape }))
      .reshape([B * nh, S, d]);
  const q = await heads(l.query), k = await heads(l.key), v = await heads(l.value);
  let scores = await matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(d), tape });
  if (bias) {
    scores = await biasAdd(scores.reshape([B, nh * S * S]), bias, { tape });
  }
  const probs = await softmax(scores.reshape([B, nh * S, S]), { mask, tape });
  const ctx = await matmul(probs.reshape([B * nh, S, S]), v, { tape });
  const merged = await swap12(ctx.reshape([B, nh, S, d]), { tape });
  return await dense(merged.reshape([B * S, width]), l.output, tape);
}

async function norm(cfg: EncoderConfig, x: Tensor, n: Norm, tape?: Tape): Promise<Tensor> {
  return await layerNorm(x, n.weight, n.bias, { eps: cfg.layerNormEps, tape });
}

async function transformerLayer(
  cfg: EncoderConfig,
  l: LayerParams,
  x: Tensor,
  mask: Tensor,
  b: TokenBatch,
  bias: Tensor | null,
  tape?: Tape,
): Promise<Tensor> {
  const act = cfg.activation === "gelu" ? gelu : relu;
  const ffn = async (h: Tensor) =>
    await dense(await act(await dense(h, l.ffnIn, tape), { tape }), l.ffnOut, tape);
  if (cfg.norm === "post") {
    const a = await norm(
      cfg,
      await add(await attention(cfg, l, x, mask, b, bias, tape), x, { tape }),
      l.attentionNorm,
      tape,
    );
    return await norm(cfg, await add(await ffn(a), a, { tape }), l.ffnNorm, tape);
  }
  const residual = l.residual ? await dense(x, l.residual, tape) : x;
  const a = await add(
    await attention(cfg, l, await norm(cfg, x, l.attentionNorm, tape), mask, b, bias, tape),
    residual,
    { tape },
  );
  return await add(await ffn(await norm(cfg, a, l.ffnNorm, tape)), a, { tape });
}

/** The outputs of {@link encoderForward}. */
export interface EncoderOutput {
  /** Final token states [B, S, H]. */
  hidden: Tensor;
  /** The pooled (and, if configured, L2-normalised) embeddings [B, H]. */
  pooled: Tensor;
}

/** The batch's mask with the first `skip` positions of every sequence cleared. */
function skipLeading(b: TokenBatch, skip: number): Float32Array {
  const m = Float32Array.from(b.mask);
  for (let r = 0; r < b.batch; r++) m.fill(0, r * b.seq, r * b.seq + Math.min(skip, b.seq));
  return m;
}

/**
 * Runs the encoder on a padded batch. With `tape`, every op records its backward step, and
 * gradients reach every parameter watched on the tape.
 *
 * @example
 * ```ts
 * const { pooled } = await encoderForward(gpu, config, params, batch, { tape });
 * ```
 */
export async function encoderForward(
  gpu: Gpu,
  cfg: EncoderConfig,
  p: EncoderParams,
  b: TokenBatch,
  opts: ForwardOptions = {},
): Promise<EncoderOutput> {
  const tape = opts.tape;
  if (b.seq > cfg.maxPositions) {
    throw new RangeError(
      `encoder: sequences of ${b.seq} tokens exceed the model's ${cfg.maxPositions}`,
    );
  }
  const mask = Tensor.from(gpu, b.mask, [b.batch, b.seq]);
  let x = await embed(gpu, cfg, p, b, tape);
  const bias = p.relativeAttentionBias
    ? await relativeBias(gpu, cfg, p.relativeAttentionBias, b.seq, tape)
    : null;
  for (const layer of p.layers) x = await transformerLayer(cfg, layer, x, mask, b, bias, tape);
  if (p.finalNorm) x = await norm(cfg, x, p.finalNorm, tape);
  const hidden = x.reshape([b.batch, b.seq, cfg.hidden]);
  if (cfg.pooling === "pooler" && !p.pooler) {
    throw new Error("encoder: pooling 'pooler' needs pooler weights");
  }
  let pooled: Tensor;
  if (cfg.pooling === "cls" || cfg.pooling === "pooler") {
    pooled = await takeRow(hidden, 0, { tape });
  } else {
    const skip = b.poolSkip ?? 0;
    const poolMask = skip > 0 ? Tensor.from(gpu, skipLeading(b, skip), [b.batch, b.seq]) : mask;
    const pool = cfg.pooling === "mean"
      ? maskedMean
      : cfg.pooling === "max"
      ? maskedMax
      : maskedLast;
    pooled = await pool(hidden, poolMask, { tape });
  }
  if (p.pooler) pooled = await tanh(await dense(pooled, p.pooler, tape), { tape });
  if (cfg.normalize) pooled = await l2Normalize(pooled, { tape });
  return { hidden, pooled };
}

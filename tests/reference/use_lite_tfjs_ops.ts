/**
 * USE-lite's forward written with TF.js ops (`@tensorflow/tfjs-core`), over padded batches with a
 * mask, plus the margin loss and its gradients by TF.js's own autodiff (`tf.variableGrads`): the
 * independent autodiff reference for the WebGPU encoder's hand-derived backward, and the TF.js
 * side of the `train` benchmark.
 *
 * Every operation follows docs/use_lite_graph.md in the graph's order, including what the graph
 * does at padding (the input, the residual widening and the FFN are zeroed there; padded keys get
 * the additive bias `(1 - mask) * -1e9`; padded queries are computed and ignored by the masked
 * mean). Nothing here is shared with src/ except the weight names, which are this project's
 * checkpoint names (what `readUseLiteWeights()` returns), so one weight map feeds both.
 *
 * Which backend runs the ops is the caller's choice (`tf.setBackend`); the module imports
 * tfjs-core and, for its gradient registrations only, `@tensorflow/tfjs`. One kernel substitution, for backends without `UnsortedSegmentSum` (wasm): the
 * embedding lookup's gradient (TF.js: `unsortedSegmentSum(dy, ids, rows)`) is `scatterND`, which
 * sums duplicate indices, i.e. the same scatter-add. Pass `scatterEmbeddingGrad: true`.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
// TF.js's gradient functions: tfjs-core's Node bundle (what Deno loads) registers none, its ESM
// build cannot be imported (extensionless relative imports), and the union package's Node bundle
// registers them all with tfjs-core's shared registry on import. Nothing else of it is used.
import "npm:@tensorflow/tfjs@4.22.0";

/** A weight: shape and row-major values. */
export interface TfjsWeight {
  /** Dimensions. */
  shape: number[];
  /** Values, row-major. */
  data: ArrayLike<number>;
}

/** A padded batch: ids and mask `[batch, seq]` (mask 1 at real tokens, 0 at padding). */
export interface TfjsTokenBatch {
  /** Texts. */
  batch: number;
  /** Padded length. */
  seq: number;
  /** Token ids, row-major `[batch, seq]`. */
  ids: ArrayLike<number>;
  /** 1 at real tokens, 0 at padding, `[batch, seq]`. */
  mask: ArrayLike<number>;
}

/** Options of {@link useLiteForwardTfjs}. */
export interface TfjsForwardOptions {
  /** Embedding gradient by scatterND instead of unsortedSegmentSum (wasm). Default false. */
  scatterEmbeddingGrad?: boolean;
}

/** Every weight name the forward reads (this project's checkpoint names). */
export const USE_LITE_TFJS_WEIGHTS: readonly string[] = [
  "embeddings.word_embeddings.weight",
  "layers.0.residual.weight",
  "layers.0.residual.bias",
  ...[0, 1].flatMap((l) =>
    [
      "attention_norm",
      "attention.query",
      "attention.key",
      "attention.value",
      "attention.output",
      "ffn_norm",
      "ffn.in",
      "ffn.out",
    ].flatMap((n) => [`layers.${l}.${n}.weight`, `layers.${l}.${n}.bias`])
  ),
  "head.weight",
  "head.bias",
];

/** The weights as TF.js variables, by name (`tf.variable`, trainable, float32). */
export function useLiteVariables(weights: Map<string, TfjsWeight>): Map<string, tf.Variable> {
  const out = new Map<string, tf.Variable>();
  for (const name of USE_LITE_TFJS_WEIGHTS) {
    const w = weights.get(name);
    if (!w) throw new Error(`USE-lite TF.js ops: weight ${name} missing`);
    out.set(name, tf.variable(tf.tensor(Float32Array.from(w.data), w.shape, "float32"), true));
  }
  return out;
}

const LN_EPS = 1e-6; // S/Layer_1/.../layer_norm/Cast/x
const PADDING_BIAS = -1e9; // attention_bias_ignore_padding/mul/y
const L2_EPS = 1e-12; // l2_normalize/Maximum/y
// MultiheadAttention/mul/y of layer 0 (head width 64) and layer 1 (head width 128)
const Q_SCALE = [0.125, 0.0883883461356163];
const HEADS = 4;

function get(w: Map<string, tf.Tensor>, name: string): tf.Tensor {
  const t = w.get(name);
  if (!t) throw new Error(`USE-lite TF.js ops: weight ${name} missing`);
  return t;
}

/** x[n, in] @ W[in, out] + b[out]. */
function dense(w: Map<string, tf.Tensor>, x: tf.Tensor2D, name: string): tf.Tensor2D {
  return tf.add(tf.matMul(x, get(w, `${name}.weight`) as tf.Tensor2D), get(w, `${name}.bias`));
}

/** LayerNorm over the last dim: (x - mean) * rsqrt(var + eps) * scale + bias. */
function layerNorm(w: Map<string, tf.Tensor>, x: tf.Tensor2D, name: string): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const c = tf.sub(x, mean);
  const variance = tf.mean(tf.square(c), -1, true);
  const y = tf.mul(c, tf.rsqrt(tf.add(variance, LN_EPS)));
  return tf.add(tf.mul(y, get(w, `${name}.weight`)), get(w, `${name}.bias`));
}

/** Embedding lookup whose gradient is a scatterND (sums duplicates) instead of a segment sum. */
function gatherScatterGrad(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [t, i, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([i]);
    return {
      value: tf.gather(t, i),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.scatterND(tf.reshape(saved[0], [-1, 1]), dy, table.shape as [number, number]),
        tf.zerosLike(saved[0]),
      ],
    };
  });
  return f(table, ids) as tf.Tensor2D;
}

/**
 * The USE-lite forward of a padded batch with TF.js ops: the L2-normalised embeddings
 * `[batch, 512]` (docs/use_lite_graph.md, sections 2-7). Call it inside `tf.tidy` or a gradient
 * function; `w` maps this project's weight names to tensors or variables.
 */
export function useLiteForwardTfjs(
  w: Map<string, tf.Tensor>,
  b: TfjsTokenBatch,
  opts: TfjsForwardOptions = {},
): tf.Tensor2D {
  const { batch: B, seq: S } = b;
  const n = B * S;
  const ids = tf.tensor1d(Int32Array.from(b.ids), "int32");
  const mask = tf.tensor2d(Float32Array.from(b.mask), [B, S]);
  const maskCol = tf.reshape(mask, [n, 1]); // per token row
  // 2-3: x = 2 * embedding + timing signal at real tokens, 0 at padding.
  const table = get(w, "embeddings.word_embeddings.weight") as tf.Tensor2D;
  const e = opts.scatterEmbeddingGrad ? gatherScatterGrad(table, ids) : tf.gather(table, ids);
  const half = table.shape[1] / 2;
  const inv = tf.exp(tf.mul(tf.range(0, half, 1, "float32"), -Math.log(1e4) / (half - 1)));
  const arg = tf.mul(tf.reshape(tf.range(0, S, 1, "float32"), [S, 1]), tf.reshape(inv, [1, half]));
  const signal = tf.concat([tf.sin(arg), tf.cos(arg)], 1); // [S, 256], sines first
  const withSignal = tf.add(tf.reshape(e, [B, S, 2 * half]), signal); // E + signal
  let x = tf.mul(
    tf.reshape(tf.add(tf.reshape(e, [B, S, 2 * half]), withSignal), [n, 2 * half]),
    maskCol,
  ) as tf.Tensor2D;
  // Padding bias over keys, [B, 1, 1, S].
  const keyBias = tf.reshape(tf.mul(tf.sub(1, mask), PADDING_BIAS), [B, 1, 1, S]);
  for (let l = 0; l < 2; l++) {
    const p = `layers.${l}`;
    const din = x.shape[1];
    const dh = din / HEADS;
    const ln = layerNorm(w, x, `${p}.attention_norm`);
    const residual = l === 0 ? tf.mul(dense(w, x, `${p}.residual`), maskCol) as tf.Tensor2D : x;
    const heads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [B, S, HEADS, dh]), [0, 2, 1, 3]);
    const q = tf.mul(heads(dense(w, ln, `${p}.attention.query`)), Q_SCALE[l]);
    const k = heads(dense(w, ln, `${p}.attention.key`));
    const v = heads(dense(w, ln, `${p}.attention.value`));
    const scores = tf.add(tf.matMul(q as tf.Tensor4D, k as tf.Tensor4D, false, true), keyBias);
    const probs = tf.softmax(scores, -1);
    const ctx = tf.reshape(tf.transpose(tf.matMul(probs, v as tf.Tensor4D), [0, 2, 1, 3]), [
      n,
      din,
    ]);
    const h = tf.add(
      dense(w, ctx as tf.Tensor2D, `${p}.attention.output`),
      residual,
    ) as tf.Tensor2D;
    const f = tf.relu(dense(w, layerNorm(w, h, `${p}.ffn_norm`), `${p}.ffn.in`)) as tf.Tensor2D;
    x = tf.add(h, tf.mul(dense(w, f, `${p}.ffn.out`), maskCol)) as tf.Tensor2D;
  }
  // 6: mean over the real tokens (an empty text pools to 0).
  const width = x.shape[1];
  const len = tf.maximum(tf.sum(mask, 1, true), 1); // [B, 1]
  const summed = tf.sum(tf.mul(tf.reshape(x, [B, S, width]), tf.reshape(mask, [B, S, 1])), 1);
  const pooled = tf.div(summed, len) as tf.Tensor2D;
  // 7: tanh head, L2 normalisation.
  const y = tf.tanh(dense(w, pooled, "head"));
  return tf.mul(y, tf.rsqrt(tf.maximum(tf.sum(tf.square(y), -1, true), L2_EPS))) as tf.Tensor2D;
}

/** Row-wise cosine matrix cos(a_i, b_j), norms floored at eps (1e-8, as the GPU loss). */
function cosineMatrix(a: tf.Tensor2D, b: tf.Tensor2D, eps = 1e-8): tf.Tensor2D {
  const unit = (x: tf.Tensor2D) =>
    tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), eps)) as tf.Tensor2D;
  return tf.matMul(unit(a), unit(b), false, true);
}

/** Row-wise cosines cos(a_j, b_j), norms floored at eps. */
function cosineRows(a: tf.Tensor2D, b: tf.Tensor2D, eps = 1e-8): tf.Tensor1D {
  const norm = (x: tf.Tensor2D) => tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1)), eps);
  return tf.div(tf.sum(tf.mul(a, b), -1), tf.mul(norm(a), norm(b))) as tf.Tensor1D;
}

/** The margin targets this module computes (no in-batch negatives). */
export type TfjsMarginTarget = "adaptive" | "distributed";

/**
 * The margin loss with the l2 error and the target attached (DESIGN.md): m_j = cos(q_j, p_j) -
 * cos(q_j, n_j); adaptive: mean_j (m_j - (cos(p_j, n_j)/2 + 1/2))^2; distributed:
 * T[i, j] = cos(p_i, n_j)/2 + 1/2, mean over i, j of (m_j - T[i, j])^2.
 */
export function marginLossTfjs(
  q: tf.Tensor2D,
  p: tf.Tensor2D,
  n: tf.Tensor2D,
  target: TfjsMarginTarget,
): tf.Scalar {
  const m = tf.sub(cosineRows(q, p), cosineRows(q, n)); // [B]
  const t = target === "adaptive"
    ? tf.add(tf.mul(cosineRows(p, n), 0.5), 0.5) // [B]
    : tf.add(tf.mul(cosineMatrix(p, n), 0.5), 0.5); // [B, B]; m broadcasts along rows
  return tf.mean(tf.square(tf.sub(m, t)));
}

/** One triple batch, already tokenized and padded (queries and documents separately). */
export interface TfjsTripleBatch {
  /** Queries. */
  q: TfjsTokenBatch;
  /** Positives. */
  p: TfjsTokenBatch;
  /** Negatives. */
  n: TfjsTokenBatch;
}

/** The loss of a triple batch under `w` (a scalar tensor; call inside tf.tidy or a grad). */
export function tripleLossTfjs(
  w: Map<string, tf.Tensor>,
  batch: TfjsTripleBatch,
  target: TfjsMarginTarget,
  opts: TfjsForwardOptions = {},
): tf.Scalar {
  const q = useLiteForwardTfjs(w, batch.q, opts);
  const p = useLiteForwardTfjs(w, batch.p, opts);
  const n = useLiteForwardTfjs(w, batch.n, opts);
  return marginLossTfjs(q, p, n, target);
}

/**
 * The loss and its gradient w.r.t. every variable (`tf.variableGrads`), as tensors the caller
 * owns (dispose them, or hand them to an optimizer's `applyGradients`).
 */
export function lossAndGradsTfjs(
  vars: Map<string, tf.Variable>,
  batch: TfjsTripleBatch,
  target: TfjsMarginTarget,
  opts: TfjsForwardOptions = {},
): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const list = [...vars.values()];
  const { value, grads } = tf.variableGrads(
    () => tripleLossTfjs(vars as Map<string, tf.Tensor>, batch, target, opts),
    list,
  );
  const out = new Map<string, tf.Tensor>();
  for (const [name, v] of vars) {
    const g = grads[v.name];
    if (!g) throw new Error(`USE-lite TF.js ops: no gradient for ${name}`);
    out.set(name, g);
  }
  return { loss: value, grads: out };
}

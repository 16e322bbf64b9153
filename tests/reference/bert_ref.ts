/**
 * An independent float64 CPU forward of the BERT family (BERT, DistilBERT, MPNet), written
 * straight from Hugging Face's modeling code, reading weights by their Hugging Face names. It
 * shares no code with src/models: it is the reference the GPU encoder is tested against.
 *
 * @module
 */

/** Weights by Hugging Face name, row-major, Linear weights as [out, in]. */
export type RefWeights = Map<string, { shape: number[]; data: ArrayLike<number> }>;

/** The subset of config.json the reference reads. */
export interface RefConfig {
  model_type: "bert" | "distilbert" | "mpnet" | "roberta";
  hidden: number;
  layers: number;
  heads: number;
  eps: number;
  act: "gelu" | "relu";
  padId: number;
}

type Mat = Float64Array[]; // rows

function w(weights: RefWeights, name: string): Float64Array {
  const t = weights.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return Float64Array.from(t.data);
}

// y = x·Wᵀ + b with W [out, in] (torch.nn.Linear)
function linear(x: Mat, weights: RefWeights, prefix: string): Mat {
  const W = w(weights, `${prefix}.weight`), b = w(weights, `${prefix}.bias`);
  const out = b.length, inn = W.length / out;
  return x.map((row) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < inn; i++) s += row[i] * W[o * inn + i];
      y[o] = s;
    }
    return y;
  });
}

function layerNorm(x: Mat, weights: RefWeights, prefix: string, eps: number): Mat {
  const g = w(weights, `${prefix}.weight`), b = w(weights, `${prefix}.bias`);
  return x.map((row) => {
    const n = row.length;
    const mean = row.reduce((a, v) => a + v, 0) / n;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
    const r = 1 / Math.sqrt(variance + eps);
    return row.map((v, i) => (v - mean) * r * g[i] + b[i]);
  });
}

/** erf to ~1e-15 (float64) by series / continued fraction. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax, sum = ax;
    for (let n = 1; n < 80; n++) {
      term *= -ax * ax / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc by Lentz's continued fraction for large |x|
  let f = ax, C = ax, D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

function act(v: number, kind: "gelu" | "relu"): number {
  return kind === "gelu" ? 0.5 * v * (1 + erf(v / Math.SQRT2)) : Math.max(0, v);
}

function add(a: Mat, b: Mat): Mat {
  return a.map((row, i) => row.map((v, j) => v + b[i][j]));
}

// MPNet's relative position bucket, with the float32 arithmetic torch uses for the log branch.
function mpnetBucket(relative: number, numBuckets = 32, maxDistance = 128): number {
  let ret = 0;
  let n = -relative;
  const half = numBuckets >> 1;
  if (n < 0) ret += half;
  n = Math.abs(n);
  const maxExact = half >> 1;
  if (n < maxExact) return ret + n;
  const f = Math.fround;
  const logRatio = f(Math.log(f(n / maxExact)));
  let large = maxExact +
    Math.trunc(f(f(logRatio / Math.log(maxDistance / maxExact)) * (half - maxExact)));
  large = Math.min(large, half - 1);
  return ret + large;
}

/**
 * A BERT cross-encoder's logit for one pair: the pooler output (tanh dense over [CLS]) through
 * `classifier` (weight [1, H], bias [1]), as `BertForSequenceClassification` with one label.
 */
export function crossEncoderLogit(
  cfg: RefConfig,
  weights: RefWeights,
  ids: number[],
  mask: number[],
  typeIds: number[],
): number {
  const { pooler } = bertFamilyForward(cfg, weights, ids, mask, typeIds);
  if (!pooler) throw new Error("reference: a cross-encoder needs pooler.dense");
  return linear([pooler], weights, "classifier")[0][0];
}

/**
 * One sequence's forward: last hidden state [L, H] and the pooler output (BERT only).
 * `mask` marks real tokens (1) and padding (0); masked keys get no attention.
 */
export function bertFamilyForward(
  cfg: RefConfig,
  weights: RefWeights,
  ids: number[],
  mask: number[],
  typeIds?: number[],
): { hidden: Mat; pooler: Float64Array | null } {
  const L = ids.length, H = cfg.hidden, nh = cfg.heads, d = H / nh;
  const type = cfg.model_type;
  const wordEmb = w(weights, "embeddings.word_embeddings.weight");
  const posEmb = w(weights, "embeddings.position_embeddings.weight");
  const typeEmb = type === "bert" || type === "roberta"
    ? w(weights, "embeddings.token_type_embeddings.weight")
    : null;
  let positions: number[];
  if (type === "mpnet" || type === "roberta") {
    // create_position_ids_from_input_ids: cumulative count of non-padding tokens + padding_idx
    let count = 0;
    positions = ids.map((id) => (id !== cfg.padId ? ++count + cfg.padId : cfg.padId));
  } else positions = ids.map((_, i) => i);
  let x: Mat = ids.map((id, i) => {
    const row = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      const t = typeIds?.[i] ?? 0;
      row[j] = wordEmb[id * H + j] + posEmb[positions[i] * H + j] +
        (typeEmb ? typeEmb[t * H + j] : 0);
    }
    return row;
  });
  x = layerNorm(x, weights, "embeddings.LayerNorm", cfg.eps);

  let bias: number[][][] | null = null;
  if (type === "mpnet") {
    const rel = w(weights, "encoder.relative_attention_bias.weight"); // [buckets, heads]
    bias = Array.from(
      { length: nh },
      (_, h) =>
        Array.from(
          { length: L },
          (_, i) => Array.from({ length: L }, (_, j) => rel[mpnetBucket(j - i) * nh + h]),
        ),
    );
  }

  for (let l = 0; l < cfg.layers; l++) {
    const p = type === "distilbert" ? `transformer.layer.${l}` : `encoder.layer.${l}`;
    const names = type === "bert" || type === "roberta"
      ? {
        q: `${p}.attention.self.query`,
        k: `${p}.attention.self.key`,
        v: `${p}.attention.self.value`,
        o: `${p}.attention.output.dense`,
        ln1: `${p}.attention.output.LayerNorm`,
        f1: `${p}.intermediate.dense`,
        f2: `${p}.output.dense`,
        ln2: `${p}.output.LayerNorm`,
      }
      : type === "distilbert"
      ? {
        q: `${p}.attention.q_lin`,
        k: `${p}.attention.k_lin`,
        v: `${p}.attention.v_lin`,
        o: `${p}.attention.out_lin`,
        ln1: `${p}.sa_layer_norm`,
        f1: `${p}.ffn.lin1`,
        f2: `${p}.ffn.lin2`,
        ln2: `${p}.output_layer_norm`,
      }
      : {
        q: `${p}.attention.attn.q`,
        k: `${p}.attention.attn.k`,
        v: `${p}.attention.attn.v`,
        o: `${p}.attention.attn.o`,
        ln1: `${p}.attention.LayerNorm`,
        f1: `${p}.intermediate.dense`,
        f2: `${p}.output.dense`,
        ln2: `${p}.output.LayerNorm`,
      };
    const q = linear(x, weights, names.q), k = linear(x, weights, names.k);
    const v = linear(x, weights, names.v);
    const ctx: Mat = Array.from({ length: L }, () => new Float64Array(H));
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < L; i++) {
        const scores = new Float64Array(L);
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          if (!mask[j]) {
            scores[j] = -Infinity;
            continue;
          }
          let s = 0;
          for (let e = 0; e < d; e++) s += q[i][h * d + e] * k[j][h * d + e];
          s /= Math.sqrt(d);
          if (bias) s += bias[h][i][j];
          scores[j] = s;
          max = Math.max(max, s);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += mask[j] ? Math.exp(scores[j] - max) : 0;
        for (let j = 0; j < L; j++) {
          if (!mask[j]) continue;
          const pr = Math.exp(scores[j] - max) / z;
          for (let e = 0; e < d; e++) ctx[i][h * d + e] += pr * v[j][h * d + e];
        }
      }
    }
    const attn = layerNorm(add(linear(ctx, weights, names.o), x), weights, names.ln1, cfg.eps);
    const inner = linear(attn, weights, names.f1).map((row) => row.map((val) => act(val, cfg.act)));
    x = layerNorm(add(linear(inner, weights, names.f2), attn), weights, names.ln2, cfg.eps);
  }
  let pooler: Float64Array | null = null;
  if ((type === "bert" || type === "roberta") && weights.has("pooler.dense.weight")) {
    pooler = linear([x[0]], weights, "pooler.dense")[0].map(Math.tanh);
  }
  return { hidden: x, pooler };
}

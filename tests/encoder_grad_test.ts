// End-to-end gradients through the whole encoder: the tape's hand-written backward steps give
// dL/dθ for every parameter θ of small seeded BERT, DistilBERT, MPNet and RoBERTa models, compared with
// central finite differences of the independent float64 reference (tests/reference/bert_ref.ts).
// L = Σ pooled · w for a seeded random w, so every pooled component's path is exercised.
//
// Tolerance: |g_gpu - g_fd| <= 2e-4 + 2e-3·|g_fd|. The GPU gradient is f32 through ~40 ops
// (relative rounding ~1e-6 per op, amplified by LayerNorm's 1/σ); the float64 finite difference
// with eps 1e-5 has truncation error ~1e-10. An indexing or derivation error shows as O(1)
// relative error, far above this bound.
import { Tape } from "../src/autodiff/tape.ts";
import { getGpu } from "../src/gpu/device.ts";
import { withArena } from "../src/gpu/tensor.ts";
import { configFromHf } from "../src/models/config.ts";
import { encoderForward, type TokenBatch } from "../src/models/encoder.ts";
import { hfParameterNames, paramsFromHfWeights } from "../src/models/hf.ts";
import type { NamedTensor } from "../src/models/safetensors.ts";
import { bertFamilyForward, type RefConfig } from "./reference/bert_ref.ts";
import { assertClose, randn, rng, sampleIndices } from "./helpers.ts";

const V = 40, H = 16, F = 24, HEADS = 2, P = 24;

function shapeOf(name: string, buckets: number, types = 2): number[] {
  if (name === "embeddings.word_embeddings.weight") return [V, H];
  if (name === "embeddings.position_embeddings.weight") return [P, H];
  if (name === "embeddings.token_type_embeddings.weight") return [types, H];
  if (name === "encoder.relative_attention_bias.weight") return [buckets, HEADS];
  if (/(intermediate\.dense|ffn\.lin1)\.weight$/.test(name)) return [F, H];
  if (/(intermediate\.dense|ffn\.lin1)\.bias$/.test(name)) return [F];
  if (/(^|\.)(output\.dense|ffn\.lin2)\.weight$/.test(name) && !name.includes("attention")) {
    return [H, F];
  }
  if (name.endsWith(".weight") && !/LayerNorm|layer_norm/.test(name)) return [H, H];
  return [H];
}

const FAMILIES: [string, Record<string, unknown>, RefConfig][] = [
  ["bert", {
    model_type: "bert",
    vocab_size: V,
    hidden_size: H,
    num_hidden_layers: 2,
    num_attention_heads: HEADS,
    intermediate_size: F,
    max_position_embeddings: P,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
  }, { model_type: "bert", hidden: H, layers: 2, heads: HEADS, eps: 1e-12, act: "gelu", padId: 0 }],
  ["distilbert", {
    model_type: "distilbert",
    vocab_size: V,
    dim: H,
    n_layers: 2,
    n_heads: HEADS,
    hidden_dim: F,
    max_position_embeddings: P,
  }, {
    model_type: "distilbert",
    hidden: H,
    layers: 2,
    heads: HEADS,
    eps: 1e-12,
    act: "gelu",
    padId: 0,
  }],
  ["mpnet", {
    model_type: "mpnet",
    vocab_size: V,
    hidden_size: H,
    num_hidden_layers: 1,
    num_attention_heads: HEADS,
    intermediate_size: F,
    max_position_embeddings: P,
    relative_attention_num_buckets: 32,
    layer_norm_eps: 1e-5,
    pad_token_id: 1,
  }, { model_type: "mpnet", hidden: H, layers: 1, heads: HEADS, eps: 1e-5, act: "gelu", padId: 1 }],
  ["roberta", {
    model_type: "roberta",
    vocab_size: V,
    hidden_size: H,
    num_hidden_layers: 2,
    num_attention_heads: HEADS,
    intermediate_size: F,
    max_position_embeddings: P,
    type_vocab_size: 1,
    layer_norm_eps: 1e-5,
    pad_token_id: 1,
  }, {
    model_type: "roberta",
    hidden: H,
    layers: 2,
    heads: HEADS,
    eps: 1e-5,
    act: "gelu",
    padId: 1,
  }],
];
/** Families whose checkpoint has a tanh pooler (pooled through it, as the authors' RoBERTa). */
const POOLER = ["bert", "roberta"];

for (const [family, raw, ref] of FAMILIES) {
  Deno.test(`${family}: tape gradients of every parameter match finite differences of the float64 reference`, async () => {
    const gpu = await getGpu();
    const cfg = configFromHf(raw, "config.json", {
      hasPooler: POOLER.includes(family),
      pooling: POOLER.includes(family) ? "pooler" : undefined,
    });
    const weights = new Map<string, NamedTensor>();
    hfParameterNames(cfg, POOLER.includes(family)).forEach((name, i) => {
      const shape = shapeOf(name, 32, raw.type_vocab_size as number | undefined);
      const n = shape.reduce((a, b) => a * b, 1);
      const isNorm = /LayerNorm|layer_norm/.test(name);
      const data = randn(n, 500 + i, isNorm ? 0.2 : 0.5);
      if (isNorm && name.endsWith(".weight")) { for (let j = 0; j < n; j++) data[j] += 1; }
      weights.set(name, { shape, data });
    });
    const seq = 7, batchSize = 3, pad = cfg.padId;
    const u = rng(99);
    const ids = new Int32Array(batchSize * seq), mask = new Float32Array(batchSize * seq);
    for (let b = 0; b < batchSize; b++) {
      const len = seq - 2 * b;
      for (let s = 0; s < seq; s++) {
        ids[b * seq + s] = s < len ? 2 + Math.floor(u() * (V - 2)) : pad;
        mask[b * seq + s] = s < len ? 1 : 0;
      }
    }
    const batch: TokenBatch = { batch: batchSize, seq, ids, mask };
    const w = randn(batchSize * H, 4242);

    const { params, named } = paramsFromHfWeights(gpu, cfg, weights);
    const tape = new Tape();
    tape.watch(...named.values());
    const gpuGrads = await withArena(async () => {
      const { pooled } = await encoderForward(gpu, cfg, params, batch, { tape });
      await tape.backward(pooled, w);
      const out = new Map<string, Float32Array>();
      for (const [name, t] of named) out.set(name, (await tape.grad(t)!.read()) as Float32Array);
      return out;
    }, () => []);
    tape.dispose();
    for (const t of named.values()) t.destroy();

    const f64 = new Map(
      [...weights].map(([k, v]) => [k, { shape: v.shape, data: Float64Array.from(v.data) }]),
    );
    const loss = () => {
      let s = 0;
      for (let b = 0; b < batchSize; b++) {
        const out = bertFamilyForward(
          ref,
          f64,
          Array.from(ids.subarray(b * seq, (b + 1) * seq)),
          Array.from(mask.subarray(b * seq, (b + 1) * seq)),
        );
        const pooled = out.pooler ?? out.hidden[0];
        for (let j = 0; j < H; j++) s += pooled[j] * w[b * H + j];
      }
      return s;
    };
    const eps = 1e-5;
    let k = 0;
    for (const [name, t] of f64) {
      // Embedding tables: sample among rows the batch uses, plus one unused row (gradient 0).
      const picks = sampleIndices(t.data.length, 6, 77 + k++);
      if (name === "embeddings.word_embeddings.weight") picks.push(ids[0] * H + 3, (V - 1) * H);
      const numeric = picks.map((j) => {
        const keep = t.data[j];
        t.data[j] = keep + eps;
        const up = loss();
        t.data[j] = keep - eps;
        const down = loss();
        t.data[j] = keep;
        return (up - down) / (2 * eps);
      });
      const g = gpuGrads.get(name)!;
      assertClose(
        picks.map((j) => g[j]),
        numeric,
        { atol: 2e-4, rtol: 2e-3 },
        `${family} d/d ${name}`,
      );
    }
  });
}

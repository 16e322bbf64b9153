/**
 * The `train-synthetic` bench section: full training steps (three encoder forwards on one tape,
 * the distributed margin loss, backward, gradient norm, AdamW) of seeded random models with
 * random token ids, so it needs no npm package, no tokenizer and no weights: a bare Deno binary
 * runs it on any GPU machine. Models: USE-lite's architecture and BERT-base's. Reports ms per
 * phase, triples/s and model FLOP/s (matmul FLOPs counted analytically: forward, and twice that
 * for the backward's two products per matmul).
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { Tape } from "../../src/autodiff/tape.ts";
import type { Gpu } from "../../src/gpu/device.ts";
import { synchronize } from "../../src/gpu/kernels.ts";
import { Tensor, withArena } from "../../src/gpu/tensor.ts";
import { marginLossTensor } from "../../src/losses/margin.ts";
import { type EncoderConfig, USE_LITE_CONFIG } from "../../src/models/config.ts";
import {
  encoderForward,
  type EncoderParams,
  type LayerParams,
  type Linear,
  type Norm,
  type TokenBatch,
} from "../../src/models/encoder.ts";
import { AdamW, clipGradNorm } from "../../src/train/optimizer.ts";

/** A model shape for the benchmark. */
interface Arch {
  name: string;
  config: EncoderConfig;
  /** Input width of each layer (USE-lite's first layer reads 256). */
  inWidth: (layer: number) => number;
}

const BERT_BASE: Arch = {
  name: "bert-base (random weights)",
  inWidth: () => 768,
  config: {
    family: "bert",
    vocabSize: 30522,
    hidden: 768,
    layers: 12,
    heads: 12,
    intermediate: 3072,
    activation: "gelu",
    norm: "post",
    layerNormEps: 1e-12,
    embeddingScale: 1,
    positions: "learned",
    maxPositions: 512,
    positionOffset: 0,
    typeVocabSize: 2,
    relativeAttentionBuckets: 0,
    relativeAttentionMaxDistance: 0,
    pooling: "cls",
    normalize: false,
    padId: 0,
  },
};

const USE_LITE_SHAPE: Arch = {
  name: "use-lite architecture (random weights)",
  inWidth: (l) => (l === 0 ? 256 : 512),
  config: { ...USE_LITE_CONFIG },
};

let seed = 12345;
function random(n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    out[i] = ((seed / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

function randomParams(gpu: Gpu, arch: Arch): { params: EncoderParams; named: Map<string, Tensor> } {
  const named = new Map<string, Tensor>();
  const t = (name: string, shape: number[], scale: number, offset = 0) => {
    const data = random(shape.reduce((a, b) => a * b, 1), scale);
    if (offset) { for (let i = 0; i < data.length; i++) data[i] += offset; }
    const x = Tensor.from(gpu, data, shape, "f32", name);
    named.set(name, x);
    return x;
  };
  const c = arch.config;
  // Weights stored [in, out] (outIn false), the layout USE-lite uses.
  const lin = (name: string, inn: number, out: number): Linear => ({
    weight: t(`${name}.weight`, [inn, out], 1 / Math.sqrt(inn)),
    bias: t(`${name}.bias`, [out], 0.02),
    outIn: false,
  });
  const norm = (name: string, width: number): Norm => ({
    weight: t(`${name}.weight`, [width], 0.1, 1),
    bias: t(`${name}.bias`, [width], 0.1),
  });
  const embWidth = arch.inWidth(0);
  const layers: LayerParams[] = [];
  for (let l = 0; l < c.layers; l++) {
    const inW = arch.inWidth(l);
    const p = `layers.${l}`;
    layers.push({
      query: lin(`${p}.query`, inW, inW),
      key: lin(`${p}.key`, inW, inW),
      value: lin(`${p}.value`, inW, inW),
      output: lin(`${p}.output`, inW, c.hidden),
      attentionNorm: norm(`${p}.attention_norm`, c.norm === "pre" ? inW : c.hidden),
      ffnIn: lin(`${p}.ffn_in`, c.hidden, c.intermediate),
      ffnOut: lin(`${p}.ffn_out`, c.intermediate, c.hidden),
      ffnNorm: norm(`${p}.ffn_norm`, c.hidden),
      residual: inW !== c.hidden ? lin(`${p}.residual`, inW, c.hidden) : undefined,
    });
  }
  const params: EncoderParams = {
    wordEmbeddings: t("word_embeddings", [c.vocabSize, embWidth], 0.5),
    layers,
  };
  if (c.positions === "learned") {
    params.positionEmbeddings = t("position_embeddings", [c.maxPositions, embWidth], 0.5);
  }
  if (c.typeVocabSize) {
    params.tokenTypeEmbeddings = t("token_types", [c.typeVocabSize, embWidth], 0.5);
  }
  if (c.norm === "post") params.embeddingNorm = norm("embedding_norm", embWidth);
  if (c.pooling === "mean") params.pooler = lin("head", c.hidden, c.hidden);
  return { params, named };
}

/** Forward matmul FLOPs of one encoder pass over `batch` sequences of `seq` tokens. */
export function forwardMatmulFlops(arch: Arch, batch: number, seq: number): number {
  const c = arch.config, T = batch * seq;
  let f = 0;
  for (let l = 0; l < c.layers; l++) {
    const w = arch.inWidth(l);
    f += 2 * T * w * w * 3; // q, k, v
    f += 2 * batch * seq * seq * w * 2; // scores and probabilities · values
    f += 2 * T * w * c.hidden; // attention output
    if (w !== c.hidden) f += 2 * T * w * c.hidden; // residual projection
    f += 2 * T * c.hidden * c.intermediate * 2; // feed-forward
  }
  return f;
}

function randomBatch(batch: number, seq: number, vocab: number): TokenBatch {
  const ids = new Int32Array(batch * seq);
  for (let i = 0; i < ids.length; i++) ids[i] = 1 + ((i * 7919 + 13) % (vocab - 1));
  return { batch, seq, ids, mask: new Float32Array(batch * seq).fill(1) };
}

/** Runs the section (registered in scripts/bench.ts as `train-synthetic`). */
export async function trainSyntheticSection(ctx: BenchContext): Promise<void> {
  const { gpu, options } = ctx;
  const B = 32, Q = 32, D = 128;
  const archs = ctx.gpu.isSoftware ? [USE_LITE_SHAPE] : [USE_LITE_SHAPE, BERT_BASE];
  const rows = [];
  for (const arch of archs) {
    const { params, named } = randomParams(gpu, arch);
    const optimizer = new AdamW(named, { lr: 1e-5 });
    const q = randomBatch(B, Q, arch.config.vocabSize);
    const d = randomBatch(B, D, arch.config.vocabSize);
    const step = async () => {
      const tape = new Tape();
      tape.watch(...named.values());
      try {
        return await withArena(async () => {
          const t0 = performance.now();
          const enc = async (b: TokenBatch) =>
            (await encoderForward(gpu, arch.config, params, b, { tape })).pooled;
          const loss = await marginLossTensor(await enc(q), await enc(d), await enc(d), {
            target: "distributed",
            error: "l2",
            tape,
          });
          await synchronize(gpu);
          const t1 = performance.now();
          await tape.backward(loss);
          const grads = new Map([...named].map(([k, v]) => [k, tape.grad(v)!]));
          await clipGradNorm(grads, Infinity);
          await synchronize(gpu);
          const t2 = performance.now();
          await optimizer.step(grads);
          await synchronize(gpu);
          const t3 = performance.now();
          return { forward: t1 - t0, backward: t2 - t1, optimizer: t3 - t2 };
        }, () => []);
      } finally {
        tape.dispose();
      }
    };
    const warmup = Math.max(1, Math.min(options.warmup, 2));
    for (let i = 0; i < warmup; i++) await step();
    const iters = Math.max(1, Math.min(options.iters, 5));
    const times = [];
    for (let i = 0; i < iters; i++) times.push(await step());
    const best = times.reduce((a, b) =>
      a.forward + a.backward + a.optimizer <= b.forward + b.backward + b.optimizer ? a : b
    );
    const total = best.forward + best.backward + best.optimizer;
    // q, p and n passes; backward costs two matmuls per forward matmul.
    const flops = 3 * (forwardMatmulFlops(arch, B, Q) + 2 * forwardMatmulFlops(arch, B, D));
    const row = {
      model: arch.name,
      batch: B,
      queryTokens: Q,
      docTokens: D,
      forwardMs: round(best.forward),
      backwardMs: round(best.backward),
      optimizerMs: round(best.optimizer),
      stepMs: round(total),
      triplesPerSecond: round((B / total) * 1000),
      modelTflops: round((flops / (total / 1000)) / 1e12),
    };
    rows.push(row);
    ctx.log(
      `train-synthetic ${arch.name}: ${row.stepMs} ms/step (forward ${row.forwardMs}, backward ` +
        `${row.backwardMs}, optimizer ${row.optimizerMs}), ${row.triplesPerSecond} triples/s, ` +
        `${row.modelTflops} model TFLOP/s`,
    );
    for (const t of named.values()) t.destroy();
    optimizer.destroy();
  }
  ctx.result.trainSynthetic = rows;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

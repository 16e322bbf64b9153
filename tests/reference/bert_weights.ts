// Seeded random weights for a Hugging Face BERT-family config (every parameter name with its
// shape) and random padded token batches: the inputs of the encoder tests that compare the GPU
// encoder with the float64 reference (bert_encoder_test, st_layout_test).
import { configFromHf } from "../../src/models/config.ts";
import type { TokenBatch } from "../../src/models/encoder.ts";
import { hfParameterNames } from "../../src/models/hf.ts";
import type { NamedTensor } from "../../src/models/safetensors.ts";
import { randn, rng } from "../helpers.ts";

/** Seeded random weights for every parameter name, with shapes from the config. */
export function randomWeights(
  raw: Record<string, unknown>,
  seed: number,
): Map<string, NamedTensor> {
  const cfg = configFromHf(raw, "config.json", { hasPooler: true });
  const H = cfg.hidden, F = cfg.intermediate;
  const P = raw.max_position_embeddings as number;
  const shapes = new Map<string, number[]>();
  for (const name of hfParameterNames(cfg, cfg.family === "bert")) {
    let shape: number[];
    if (name === "embeddings.word_embeddings.weight") shape = [cfg.vocabSize, H];
    else if (name === "embeddings.position_embeddings.weight") shape = [P, H];
    else if (name === "embeddings.token_type_embeddings.weight") shape = [cfg.typeVocabSize, H];
    else if (name === "encoder.relative_attention_bias.weight") {
      shape = [cfg.relativeAttentionBuckets, cfg.heads];
    } else if (/(intermediate\.dense|ffn\.lin1)\.weight$/.test(name)) shape = [F, H];
    else if (/(intermediate\.dense|ffn\.lin1)\.bias$/.test(name)) shape = [F];
    else if (/(output\.dense|ffn\.lin2)\.weight$/.test(name) && !name.includes("attention")) {
      shape = [H, F];
    } else if (name.endsWith(".weight") && !/LayerNorm|layer_norm/.test(name)) shape = [H, H];
    else shape = [H];
    shapes.set(name, shape);
  }
  const out = new Map<string, NamedTensor>();
  let i = 0;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /LayerNorm|layer_norm/.test(name);
    const data = randn(
      n,
      seed * 1000 + i++,
      isNorm ? 0.1 : name.includes("embeddings") ? 0.5 : 0.08,
    );
    if (isNorm && name.endsWith(".weight")) { for (let j = 0; j < n; j++) data[j] += 1; }
    out.set(name, { shape, data });
  }
  return out;
}

/** A batch of random ids with varied lengths (some padded). */
export function randomBatch(
  seed: number,
  batch: number,
  seq: number,
  vocab: number,
  pad: number,
): TokenBatch {
  const u = rng(seed);
  const ids = new Int32Array(batch * seq), mask = new Float32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const len = seq - ((b * 5) % (seq - 2)); // varied lengths, some padded
    for (let s = 0; s < seq; s++) {
      const real = s < len;
      ids[b * seq + s] = real ? 3 + Math.floor(u() * (vocab - 3)) : pad;
      mask[b * seq + s] = real ? 1 : 0;
    }
  }
  return { batch, seq, ids, mask };
}

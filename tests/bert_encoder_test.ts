// The GPU encoder of the BERT family (BERT with the real all-MiniLM-L6-v2 config and tokenizer,
// fewer layers; DistilBERT; MPNet) against the independent float64 reference in
// tests/reference/bert_ref.ts, on seeded random weights saved as a Hugging Face model directory
// and loaded back through the safetensors reader.
//
// Tolerance 1e-4 absolute per component (the bound): f32 accumulation over H = 384
// products of O(1) terms gives ~1e-5; LayerNorm keeps states O(1) through the layers.
import { deepStrictEqual } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { withArena } from "../src/gpu/tensor.ts";
import { encoderForward } from "../src/models/encoder.ts";
import { hfParameterNames, loadHfEncoder } from "../src/models/hf.ts";
import { configFromHf } from "../src/models/config.ts";
import { writeSafetensors } from "../src/models/safetensors.ts";
import { bertFamilyForward, type RefConfig } from "./reference/bert_ref.ts";
import { assertClose } from "./helpers.ts";
import { randomBatch, randomWeights } from "./reference/bert_weights.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

async function checkFamily(raw: Record<string, unknown>, ref: RefConfig, seed: number) {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir();
  try {
    const weights = randomWeights(raw, seed);
    await writeSafetensors(`${dir}/model.safetensors`, weights);
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
    await Deno.copyFile(`${tokenizerDir}/tokenizer.json`, `${dir}/tokenizer.json`);
    const model = await loadHfEncoder(gpu, dir, { normalize: false });
    const batch = randomBatch(seed, 3, 11, model.config.vocabSize, model.config.padId);
    const { hidden, pooled } = await withArena(
      async () => {
        const out = await encoderForward(gpu, model.config, model.params, batch);
        return { hidden: await out.hidden.read(), pooled: await out.pooled.read() };
      },
      () => [],
    );
    const H = model.config.hidden;
    for (let b = 0; b < batch.batch; b++) {
      const ids = Array.from(batch.ids.subarray(b * batch.seq, (b + 1) * batch.seq));
      const mask = Array.from(batch.mask.subarray(b * batch.seq, (b + 1) * batch.seq));
      const want = bertFamilyForward(ref, weights, ids, mask);
      const got = hidden.subarray(b * batch.seq * H, (b + 1) * batch.seq * H);
      const wantFlat = new Float64Array(batch.seq * H);
      want.hidden.forEach((row, s) => wantFlat.set(row, s * H));
      assertClose(
        got,
        wantFlat,
        { atol: 1e-4, rtol: 0 },
        `${ref.model_type} hidden, sequence ${b}`,
      );
      const pooledWant = want.pooler ?? want.hidden[0];
      assertClose(
        pooled.subarray(b * H, (b + 1) * H),
        pooledWant,
        { atol: 1e-4, rtol: 0 },
        `${ref.model_type} pooled, sequence ${b}`,
      );
    }
    for (const t of model.named.values()) t.destroy();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("BERT (all-MiniLM-L6-v2 config, 2 layers) matches the float64 reference, pooler included", async () => {
  const raw = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/config.json`));
  raw.num_hidden_layers = 2;
  await checkFamily(raw, {
    model_type: "bert",
    hidden: raw.hidden_size,
    layers: 2,
    heads: raw.num_attention_heads,
    eps: raw.layer_norm_eps,
    act: "gelu",
    padId: 0,
  }, 11);
});

Deno.test("DistilBERT matches the float64 reference (CLS pooling)", async () => {
  const raw = {
    model_type: "distilbert",
    vocab_size: 30522,
    dim: 64,
    n_layers: 2,
    n_heads: 4,
    hidden_dim: 96,
    max_position_embeddings: 64,
    activation: "gelu",
    pad_token_id: 0,
  };
  await checkFamily(raw, {
    model_type: "distilbert",
    hidden: 64,
    layers: 2,
    heads: 4,
    eps: 1e-12,
    act: "gelu",
    padId: 0,
  }, 12);
});

Deno.test("MPNet matches the float64 reference (relative attention bias, padding-aware positions)", async () => {
  const raw = {
    model_type: "mpnet",
    vocab_size: 30522,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 96,
    max_position_embeddings: 66,
    relative_attention_num_buckets: 32,
    layer_norm_eps: 1e-5,
    hidden_act: "gelu",
    pad_token_id: 1,
  };
  await checkFamily(raw, {
    model_type: "mpnet",
    hidden: 64,
    layers: 2,
    heads: 4,
    eps: 1e-5,
    act: "gelu",
    padId: 1,
  }, 13);
});

Deno.test("hfParameterNames lists every BERT parameter once", () => {
  const cfg = configFromHf({
    model_type: "bert",
    vocab_size: 10,
    hidden_size: 4,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 8,
    max_position_embeddings: 16,
  });
  const names = hfParameterNames(cfg, true);
  deepStrictEqual(new Set(names).size, names.length);
  deepStrictEqual(names.length, 5 + 16 + 2);
});

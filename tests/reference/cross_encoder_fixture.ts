// A seeded random BERT cross-encoder saved as a Hugging Face directory in the layout of
// cross-encoder/ms-marco-MiniLM-L-6-v2 (bert.* + pooler + classifier), with the real MiniLM
// tokenizer and 2 layers; and the float64 reference's view of it. Shared by the cross-encoder
// and teacher tests.
import { configFromHf } from "../../src/models/config.ts";
import { hfParameterNames } from "../../src/models/hf.ts";
import { type NamedTensor, writeSafetensors } from "../../src/models/safetensors.ts";
import type { RefConfig } from "./bert_ref.ts";
import { randn } from "../helpers.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
/** The MiniLM tokenizer and config in ../shared. */
export const tokenizerDir = `${dataDir}/../models/minilm-l6-tokenizer`;

/** MiniLM's config with 2 layers, as a sequence classifier. */
export async function miniLmConfig(): Promise<Record<string, unknown>> {
  const raw = JSON.parse(await Deno.readTextFile(`${tokenizerDir}/config.json`));
  return { ...raw, num_hidden_layers: 2, architectures: ["BertForSequenceClassification"] };
}

/** Seeded weights of a BertForSequenceClassification with one label, `bert.`-prefixed. */
export function crossEncoderWeights(
  raw: Record<string, unknown>,
  seed: number,
  labels = 1,
): Map<string, NamedTensor> {
  const cfg = configFromHf(raw, "config.json", { hasPooler: true });
  const H = cfg.hidden, F = cfg.intermediate, P = raw.max_position_embeddings as number;
  const out = new Map<string, NamedTensor>();
  let i = 0;
  const put = (name: string, shape: number[], std: number, plusOne = false) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randn(n, seed * 1000 + i++, std);
    if (plusOne) { for (let j = 0; j < n; j++) data[j] += 1; }
    out.set(name, { shape, data });
  };
  for (const name of hfParameterNames(cfg, true)) {
    const norm = /LayerNorm/.test(name);
    let shape: number[];
    if (name === "embeddings.word_embeddings.weight") shape = [cfg.vocabSize, H];
    else if (name === "embeddings.position_embeddings.weight") shape = [P, H];
    else if (name === "embeddings.token_type_embeddings.weight") shape = [cfg.typeVocabSize, H];
    else if (/intermediate\.dense\.weight$/.test(name)) shape = [F, H];
    else if (/intermediate\.dense\.bias$/.test(name)) shape = [F];
    else if (/output\.dense\.weight$/.test(name) && !name.includes("attention")) shape = [H, F];
    else if (name.endsWith(".weight") && !norm) shape = [H, H];
    else shape = [H];
    put(
      `bert.${name}`,
      shape,
      norm ? 0.1 : name.includes("embeddings") ? 0.5 : 0.08,
      norm && name.endsWith(".weight"),
    );
  }
  put("classifier.weight", [labels, H], 0.3);
  put("classifier.bias", [labels], 0.3);
  return out;
}

/** Writes the cross-encoder into `dir`; returns the reference's weights and config. */
export async function writeCrossEncoder(dir: string, seed: number, labels = 1) {
  const raw = await miniLmConfig();
  const weights = crossEncoderWeights(raw, seed, labels);
  await writeSafetensors(`${dir}/model.safetensors`, weights);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(raw));
  await Deno.copyFile(`${tokenizerDir}/tokenizer.json`, `${dir}/tokenizer.json`);
  // The reference reads the base model's names.
  const ref = new Map([...weights].map(([k, v]) => [k.replace(/^bert\./, ""), v]));
  const refCfg: RefConfig = {
    model_type: "bert",
    hidden: raw.hidden_size as number,
    layers: 2,
    heads: raw.num_attention_heads as number,
    eps: raw.layer_norm_eps as number,
    act: "gelu",
    padId: 0,
  };
  return { ref, refCfg };
}

/**
 * Loading Hugging Face BERT-family model directories (config.json, model.safetensors or a
 * sharded index, tokenizer.json) onto the GPU encoder, and mapping Hugging Face weight names to
 * encoder roles.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { loadHfTokenizer, type TextTokenizer } from "../text/tokenizer.ts";
import { ConfigError, configFromHf, type EncoderConfig, type Pooling } from "./config.ts";
import type { EncoderParams, LayerParams, Linear, Norm } from "./encoder.ts";
import { type NamedTensor, readModelWeights } from "./safetensors.ts";

/** An encoder ready to run: its config, its parameters by role and by name, its tokenizer. */
export interface LoadedEncoder {
  /** The architecture. */
  config: EncoderConfig;
  /** Parameters by role, for the forward. */
  params: EncoderParams;
  /** The same parameters by checkpoint name, for optimizers and checkpoints. */
  named: Map<string, Tensor>;
  /** The tokenizer. */
  tokenizer: TextTokenizer;
  /** Longest input in tokens (special tokens included). */
  maxLength: number;
  /** The directory the model came from, whose config and tokenizer files a checkpoint copies. */
  sourceDir?: string;
}

/** Prefixes that task-head checkpoints put before the base model's names. */
const PREFIXES = ["bert.", "distilbert.", "mpnet.", "model."];

function stripPrefixes(weights: Map<string, NamedTensor>): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const [name, t] of weights) {
    const prefix = PREFIXES.find((p) => name.startsWith(p));
    out.set(prefix ? name.slice(prefix.length) : name, t);
  }
  return out;
}

/** The checkpoint names of every parameter the encoder uses, for a family and layer count. */
export function hfParameterNames(cfg: EncoderConfig, hasPooler: boolean): string[] {
  const names = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
  ];
  if (cfg.typeVocabSize > 0) names.push("embeddings.token_type_embeddings.weight");
  if (cfg.relativeAttentionBuckets > 0) names.push("encoder.relative_attention_bias.weight");
  for (let l = 0; l < cfg.layers; l++) {
    for (const n of Object.values(layerNames(cfg, l))) names.push(`${n}.weight`, `${n}.bias`);
  }
  if (hasPooler) names.push("pooler.dense.weight", "pooler.dense.bias");
  return names;
}

function layerNames(
  cfg: EncoderConfig,
  l: number,
): Record<Exclude<keyof LayerParams, "residual">, string> {
  switch (cfg.family) {
    case "bert": {
      const p = `encoder.layer.${l}`;
      return {
        query: `${p}.attention.self.query`,
        key: `${p}.attention.self.key`,
        value: `${p}.attention.self.value`,
        output: `${p}.attention.output.dense`,
        attentionNorm: `${p}.attention.output.LayerNorm`,
        ffnIn: `${p}.intermediate.dense`,
        ffnOut: `${p}.output.dense`,
        ffnNorm: `${p}.output.LayerNorm`,
      };
    }
    case "distilbert": {
      const p = `transformer.layer.${l}`;
      return {
        query: `${p}.attention.q_lin`,
        key: `${p}.attention.k_lin`,
        value: `${p}.attention.v_lin`,
        output: `${p}.attention.out_lin`,
        attentionNorm: `${p}.sa_layer_norm`,
        ffnIn: `${p}.ffn.lin1`,
        ffnOut: `${p}.ffn.lin2`,
        ffnNorm: `${p}.output_layer_norm`,
      };
    }
    case "mpnet": {
      const p = `encoder.layer.${l}`;
      return {
        query: `${p}.attention.attn.q`,
        key: `${p}.attention.attn.k`,
        value: `${p}.attention.attn.v`,
        output: `${p}.attention.attn.o`,
        attentionNorm: `${p}.attention.LayerNorm`,
        ffnIn: `${p}.intermediate.dense`,
        ffnOut: `${p}.output.dense`,
        ffnNorm: `${p}.output.LayerNorm`,
      };
    }
    default:
      throw new Error(`no Hugging Face names for family ${cfg.family}`);
  }
}

/**
 * Builds encoder parameters from named host tensors (Hugging Face names), uploading them.
 * Throws naming the first missing tensor or shape mismatch.
 */
export function paramsFromHfWeights(
  gpu: Gpu,
  cfg: EncoderConfig,
  weights: Map<string, NamedTensor>,
  source = "model",
): { params: EncoderParams; named: Map<string, Tensor> } {
  const named = new Map<string, Tensor>();
  const take = (name: string, shape: number[]): Tensor => {
    const t = weights.get(name);
    if (!t) throw new Error(`${source}: missing weight ${name}`);
    if (t.shape.join(",") !== shape.join(",")) {
      throw new Error(`${source}: ${name} has shape [${t.shape}], expected [${shape}]`);
    }
    const g = Tensor.from(gpu, t.data, t.shape, "f32", name);
    named.set(name, g);
    return g;
  };
  const H = cfg.hidden, F = cfg.intermediate;
  const lin = (n: string, out: number, inn: number): Linear => ({
    weight: take(`${n}.weight`, [out, inn]),
    bias: take(`${n}.bias`, [out]),
    outIn: true,
  });
  const ln = (n: string): Norm => ({
    weight: take(`${n}.weight`, [H]),
    bias: take(`${n}.bias`, [H]),
  });
  const positions = weights.get("embeddings.position_embeddings.weight");
  const params: EncoderParams = {
    wordEmbeddings: take("embeddings.word_embeddings.weight", [cfg.vocabSize, H]),
    positionEmbeddings: take("embeddings.position_embeddings.weight", [
      positions?.shape[0] ?? 0,
      H,
    ]),
    embeddingNorm: ln("embeddings.LayerNorm"),
    layers: [],
  };
  if (cfg.typeVocabSize > 0) {
    params.tokenTypeEmbeddings = take("embeddings.token_type_embeddings.weight", [
      cfg.typeVocabSize,
      H,
    ]);
  }
  if (cfg.relativeAttentionBuckets > 0) {
    params.relativeAttentionBias = take("encoder.relative_attention_bias.weight", [
      cfg.relativeAttentionBuckets,
      cfg.heads,
    ]);
  }
  for (let l = 0; l < cfg.layers; l++) {
    const n = layerNames(cfg, l);
    params.layers.push({
      query: lin(n.query, H, H),
      key: lin(n.key, H, H),
      value: lin(n.value, H, H),
      output: lin(n.output, H, H),
      attentionNorm: ln(n.attentionNorm),
      ffnIn: lin(n.ffnIn, F, H),
      ffnOut: lin(n.ffnOut, H, F),
      ffnNorm: ln(n.ffnNorm),
    });
  }
  if (cfg.pooling === "pooler") params.pooler = lin("pooler.dense", H, H);
  return { params, named };
}

/** Options of {@link loadHfEncoder}. */
export interface LoadHfOptions {
  /** Override the family's default pooling. */
  pooling?: Pooling;
  /** L2-normalise the pooled embeddings (default true: retrieval uses cosine). */
  normalize?: boolean;
  /** Longest input in tokens; default the model's maximum (and tokenizer's, if smaller). */
  maxLength?: number;
}

/**
 * Loads a Hugging Face model directory (BERT, DistilBERT, MPNet) onto the GPU.
 *
 * @example
 * ```ts
 * const model = await loadHfEncoder(gpu, "models/all-MiniLM-L6-v2");
 * ```
 */
export async function loadHfEncoder(
  gpu: Gpu,
  dir: string,
  opts: LoadHfOptions = {},
): Promise<LoadedEncoder> {
  const configPath = `${dir}/config.json`;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await Deno.readTextFile(configPath));
  } catch (e) {
    throw new ConfigError(configPath, `cannot read (${(e as Error).message})`);
  }
  const weights = stripPrefixes(await readModelWeights(dir));
  const config = configFromHf(raw, configPath, {
    pooling: opts.pooling,
    hasPooler: weights.has("pooler.dense.weight"),
    normalize: opts.normalize ?? true,
  });
  const { params, named } = paramsFromHfWeights(gpu, config, weights, dir);
  const tokenizer = await loadHfTokenizer(dir);
  let tokMax = Infinity;
  try {
    const tc = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
    if (typeof tc.model_max_length === "number" && tc.model_max_length < 1e6) {
      tokMax = tc.model_max_length;
    }
  } catch {
    // no tokenizer_config.json: the model's own maximum applies
  }
  const maxLength = Math.min(opts.maxLength ?? Infinity, config.maxPositions, tokMax);
  return { config, params, named, tokenizer, maxLength, sourceDir: dir };
}

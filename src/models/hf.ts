/**
 * Loading Hugging Face BERT-family (BERT, DistilBERT, MPNet, RoBERTa, XLM-RoBERTa) model
 * directories (config.json, model.safetensors or a sharded index, tokenizer.json) onto the GPU
 * encoder, and mapping Hugging Face weight names to encoder roles.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";
import { loadHfTokenizer, type TextTokenizer } from "../text/tokenizer.ts";
import { ConfigError, configFromHf, type EncoderConfig, type Pooling } from "./config.ts";
import type { EncoderParams, LayerParams, Linear, Norm } from "./encoder.ts";
import { type NamedTensor, readModelWeights } from "./safetensors.ts";
import { DataFormatError } from "../data/types.ts";
import { deriveSeed, Rng } from "../util/rng.ts";
import { readJsonFile, readTextFileStrict } from "../data/lines.ts";
import {
  type PromptOverrides,
  readSentenceTransformersLayout,
  type SentenceTransformersLayout,
  type TextFormat,
  textFormat,
} from "./st_layout.ts";

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
  /** Prompts and lower-casing (absent: none, prompts pooled). */
  text?: TextFormat;
  /** The sentence-transformers layout the directory declared, if any. */
  layout?: SentenceTransformersLayout;
  /** What loading had to decide that a user should hear (a pooler initialised anew...). */
  notes?: string[];
}

/** Prefixes that task-head checkpoints put before the base model's names. */
const PREFIXES = ["bert.", "distilbert.", "mpnet.", "roberta.", "model."];

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
    case "bert":
    case "roberta": {
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

/** A table's role, for messages: its weight name and the config.json field that sizes it. */
const TABLES = [
  { name: "embeddings.word_embeddings.weight", field: "vocab_size" },
  { name: "embeddings.position_embeddings.weight", field: "max_position_embeddings" },
  { name: "embeddings.token_type_embeddings.weight", field: "type_vocab_size" },
] as const;

/**
 * Checks the embedding tables' row counts against the config before anything is looked up in
 * them: Hugging Face refuses a mismatch when loading, and a lookup past a table's end on the GPU
 * would silently read zeros. The position table must have exactly the rows the config's
 * `max_position_embeddings` declares (MPNet's positions start after the padding id, and that
 * offset is part of the count).
 */
function checkTables(cfg: EncoderConfig, weights: Map<string, NamedTensor>, source: string) {
  const rows = [cfg.vocabSize, cfg.maxPositions + cfg.positionOffset, cfg.typeVocabSize];
  TABLES.forEach(({ name, field }, i) => {
    if (i === 2 && cfg.typeVocabSize === 0) return;
    const t = weights.get(name);
    if (!t) throw new DataFormatError(source, 0, `missing weight ${name}`);
    if (t.shape.length !== 2 || t.shape[1] !== cfg.hidden || t.shape[0] !== rows[i]) {
      throw new DataFormatError(
        source,
        0,
        `${name} has shape [${t.shape}], but config.json's ${field} (${rows[i]}) and hidden ` +
          `size (${cfg.hidden}) make it [${rows[i]},${cfg.hidden}]`,
      );
    }
  });
}

/**
 * Builds encoder parameters from named host tensors (Hugging Face names), uploading them.
 * Throws naming the first missing tensor or shape mismatch; the embedding tables' rows must
 * match the config's `vocab_size`, `max_position_embeddings` and `type_vocab_size`.
 */
export function paramsFromHfWeights(
  gpu: Gpu,
  cfg: EncoderConfig,
  weights: Map<string, NamedTensor>,
  source = "model",
): { params: EncoderParams; named: Map<string, Tensor> } {
  checkTables(cfg, weights, source);
  const named = new Map<string, Tensor>();
  const take = (name: string, shape: number[]): Tensor => {
    const t = weights.get(name);
    if (!t) throw new DataFormatError(source, 0, `missing weight ${name}`);
    if (t.shape.join(",") !== shape.join(",")) {
      throw new DataFormatError(source, 0, `${name} has shape [${t.shape}], expected [${shape}]`);
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
  const params: EncoderParams = {
    wordEmbeddings: take("embeddings.word_embeddings.weight", [cfg.vocabSize, H]),
    positionEmbeddings: take("embeddings.position_embeddings.weight", [
      cfg.maxPositions + cfg.positionOffset,
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

/**
 * A tanh pooler's dense layer as Hugging Face initialises a new one: weights drawn from
 * N(0, std²) (seeded, so a run is reproducible), zero bias.
 */
export function newPooler(hidden: number, std: number, seed = 1): Map<string, NamedTensor> {
  const rng = new Rng(deriveSeed(seed, "pooler"));
  const w = new Float32Array(hidden * hidden);
  for (let i = 0; i < w.length; i += 2) {
    // Box-Muller: two normals from two uniforms in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - rng.next())), a = 2 * Math.PI * rng.next();
    w[i] = std * r * Math.cos(a);
    if (i + 1 < w.length) w[i + 1] = std * r * Math.sin(a);
  }
  return new Map([
    ["pooler.dense.weight", { shape: [hidden, hidden], data: w }],
    ["pooler.dense.bias", { shape: [hidden], data: new Float32Array(hidden) }],
  ]);
}

/** Options of {@link loadHfEncoder}. */
export interface LoadHfOptions {
  /** Override the pooling the directory declares (or the family's default). */
  pooling?: Pooling;
  /**
   * L2-normalise the pooled embeddings; default what the directory's sentence-transformers
   * layout declares, else true (retrieval uses cosine).
   */
  normalize?: boolean;
  /** Override the directory's query and document prompts. */
  prompts?: PromptOverrides;
  /**
   * Longest input in tokens (a positive integer); default the model's maximum (and the
   * tokenizer's, if smaller). A larger value is capped at the model's maximum.
   */
  maxLength?: number;
}

/** The `model_max_length` of a `tokenizer_config.json`, if the file exists and sets one. */
async function tokenizerMaxLength(path: string): Promise<number> {
  const tc = await readJsonFile(path, { optional: true }); // optional file
  const v = (tc as Record<string, unknown> | null)?.model_max_length;
  if (v === undefined || v === null) return Infinity;
  // Hugging Face writes a huge sentinel (1e30) for "no limit".
  if (typeof v !== "number" || !(v >= 1)) {
    throw new DataFormatError(
      path,
      0,
      `field model_max_length is ${JSON.stringify(v)}; expected a number >= 1`,
    );
  }
  return v < 1e6 ? Math.floor(v) : Infinity;
}

/** Checks a requested maximum length: a positive integer. */
export function checkMaxLength(maxLength: number | undefined, what = "maxLength"): void {
  if (maxLength !== undefined && !(Number.isSafeInteger(maxLength) && maxLength >= 1)) {
    throw new RangeError(`${what} must be a positive integer, not ${maxLength}`);
  }
}

/**
 * Loads a Hugging Face model directory onto the GPU: BERT, DistilBERT, MPNet, RoBERTa or
 * XLM-RoBERTa (the `model_type`s that {@link configFromHf} maps), with its sentence-transformers
 * layout when it has one.
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
  return (await loadHfEncoderWithWeights(gpu, dir, opts)).model;
}

/**
 * {@link loadHfEncoder}, also returning the checkpoint's host tensors (task-head prefixes such as
 * `bert.` stripped), so a caller that needs weights beyond the encoder's (a classification head)
 * reads the files once.
 */
export async function loadHfEncoderWithWeights(
  gpu: Gpu,
  dir: string,
  opts: LoadHfOptions = {},
): Promise<{ model: LoadedEncoder; weights: Map<string, NamedTensor> }> {
  checkMaxLength(opts.maxLength);
  // A sentence-transformers directory says how to pool, normalise, truncate and prompt.
  const layout = await readSentenceTransformersLayout(dir);
  if (layout?.transformerPath) dir = `${dir}/${layout.transformerPath}`;
  const configPath = `${dir}/config.json`;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readTextFileStrict(configPath));
  } catch (e) {
    throw new ConfigError(configPath, `cannot read (${(e as Error).message})`);
  }
  // The config and the tokenizer are checked before the (large) weights are read.
  const pooling = opts.pooling ?? layout?.pooling;
  const config = configFromHf(raw, configPath, {
    pooling,
    hasPooler: true, // decided below, once the weights are known
    normalize: opts.normalize ?? layout?.normalize ?? true,
  });
  const tokenizer = await loadHfTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new DataFormatError(
      `${dir}/tokenizer.json`,
      0,
      `the tokenizer has ids up to ${tokenizer.vocabSize - 1} ` +
        `(${tokenizer.vocabSize} ids), but ${configPath} has vocab_size ${config.vocabSize} ` +
        `(the rows of embeddings.word_embeddings.weight): ids past the table would have no ` +
        `embedding. Is the tokenizer from another model?`,
    );
  }
  const tokMax = await tokenizerMaxLength(`${dir}/tokenizer_config.json`);
  const weights = stripPrefixes(await readModelWeights(dir));
  const notes: string[] = [];
  if (pooling === undefined && config.family === "bert") {
    config.pooling = weights.has("pooler.dense.weight") ? "pooler" : "cls";
  }
  if (config.pooling === "pooler" && !weights.has("pooler.dense.weight")) {
    // Asked for a pooler the checkpoint lacks (RoBERTa models saved without one): initialised
    // as Hugging Face initialises a new one, to be trained from there.
    const std = typeof raw.initializer_range === "number" ? raw.initializer_range : 0.02;
    for (const [name, t] of newPooler(config.hidden, std)) weights.set(name, t);
    notes.push(
      `${dir}: no pooler.dense weights; the pooler starts from N(0, ${std}) weights, zero bias`,
    );
  }
  // The word table's rows are checked against vocab_size with the other tables.
  const { params, named } = paramsFromHfWeights(gpu, config, weights, dir);
  const maxLength = Math.min(
    opts.maxLength ?? Infinity,
    layout?.maxSeqLength ?? Infinity,
    config.maxPositions,
    tokMax,
  );
  const model: LoadedEncoder = {
    config,
    params,
    named,
    tokenizer,
    maxLength,
    sourceDir: dir,
    text: textFormat(layout, opts.prompts),
  };
  if (layout) model.layout = layout;
  if (notes.length) model.notes = notes;
  return { model, weights };
}

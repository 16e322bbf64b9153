/**
 * One entry point from a model name to a loaded encoder, and checkpoints that load back:
 * `use-lite` (the embedded default), a model directory (Hugging Face BERT, DistilBERT, MPNet,
 * RoBERTa or XLM-RoBERTa, or a fine-tuned checkpoint written by {@link saveEncoder}), or a
 * Hugging Face Hub name, downloaded into the cache when the network is there.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import { ConfigError, type Pooling } from "./config.ts";
import { checkMaxLength, type LoadedEncoder, loadHfEncoder, type LoadHfOptions } from "./hf.ts";
import { type NamedTensor, readModelWeights, writeSafetensors } from "./safetensors.ts";
import { loadUseLite, USE_LITE_CONFIG } from "./use_lite.ts";
import { locateUseLite } from "./use_lite_assets.ts";
import { replaceDir } from "../util/fs.ts";
import { readTextFileStrict } from "../data/lines.ts";
import { type ModelCardInfo, writeModelCard } from "./model_card.ts";
import {
  type PromptOverrides,
  type SentenceTransformersLayout,
  textFormat,
  writeSentenceTransformersLayout,
} from "./st_layout.ts";

/** The model type a checkpoint of the embedded default records in its config.json. */
export const USE_LITE_MODEL_TYPE = "selfmargin-use-lite";

/** Options of {@link loadEncoder}. */
export interface LoadEncoderOptions {
  /** Longest input in tokens (default: the model's). */
  maxLength?: number;
  /**
   * Pooling instead of the one the directory declares (sentence-transformers layout) or the
   * family's default; not for USE-lite, whose pooling is part of its graph.
   */
  pooling?: Pooling;
  /** Query and document prompts instead of the directory's (any model). */
  prompts?: PromptOverrides;
  /** Where Hub downloads are cached (default `$SELFMARGIN_CACHE_DIR`/models or ~/.cache). */
  cacheDir?: string;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

function hfOptions(opts: LoadEncoderOptions): LoadHfOptions {
  return { maxLength: opts.maxLength, pooling: opts.pooling, prompts: opts.prompts };
}

/** The model cache directory. */
export function modelCacheDir(): string {
  const env = (k: string) => Deno.env.get(k);
  const base = env("SELFMARGIN_CACHE_DIR") ??
    (env("XDG_CACHE_HOME") ? `${env("XDG_CACHE_HOME")}/selfmargin` : undefined) ??
    `${env("HOME") ?? "."}/.cache/selfmargin`;
  return `${base}/models`;
}

const HUB_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"];
/** The sentence-transformers files beside modules.json (each optional). */
const ST_FILES = ["sentence_bert_config.json", "config_sentence_transformers.json"];

/**
 * Downloads a Hugging Face Hub model's config, tokenizer and safetensors weights, with its
 * sentence-transformers layout when it has one (modules.json, the pooling config,
 * sentence_bert_config.json, config_sentence_transformers.json), into the cache (once),
 * returning the directory. Offline, the error says so and how to provide the files.
 *
 * `endpoint` is the Hub's address: by default `$HF_ENDPOINT` (the variable huggingface_hub reads
 * for a mirror), else `https://huggingface.co`; files are fetched from
 * `<endpoint>/<name>/resolve/main/<file>`.
 */
export async function downloadHubModel(
  name: string,
  cacheDir = modelCacheDir(),
  endpoint = Deno.env.get("HF_ENDPOINT") || "https://huggingface.co",
): Promise<string> {
  const dir = `${cacheDir}/${name.replaceAll("/", "--")}`;
  if (
    await isDir(dir) &&
    (await Deno.stat(`${dir}/config.json`).catch(() => null) ||
      await Deno.stat(`${dir}/modules.json`).catch(() => null))
  ) return dir;
  const base = `${endpoint.replace(/\/+$/, "")}/${name}/resolve/main`;
  const tmp = `${dir}.partial-${crypto.randomUUID()}`;
  await Deno.mkdir(tmp, { recursive: true });
  const fetchTo = async (file: string, optional = false): Promise<boolean> => {
    let response: Response;
    try {
      response = await fetch(`${base}/${file}`);
    } catch (e) {
      throw new Error(
        `cannot download ${name} from the Hugging Face Hub at ${endpoint} (${
          (e as Error).message
        }). ` +
          `Offline? Put the model directory (config.json, model.safetensors, tokenizer.json) ` +
          `on disk and pass its path instead, or place it at ${dir}.`,
      );
    }
    if (!response.ok) {
      await response.body?.cancel();
      if (optional) return false;
      throw new Error(`cannot download ${base}/${file}: HTTP ${response.status}`);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (file.includes("/")) {
      await Deno.mkdir(`${tmp}/${file.slice(0, file.lastIndexOf("/"))}`, { recursive: true });
    }
    await Deno.writeFile(`${tmp}/${file}`, bytes);
    return true;
  };
  try {
    // The sentence-transformers layout first: it says where the Transformer's files are.
    let at = "";
    if (await fetchTo("modules.json", true)) {
      for (const f of ST_FILES) await fetchTo(f, true);
      const modules = JSON.parse(await readTextFileStrict(`${tmp}/modules.json`));
      for (const m of Array.isArray(modules) ? modules : []) {
        const path = typeof m?.path === "string" ? m.path : "";
        if (!/^[\w.-]*$/.test(path)) throw new Error(`${base}/modules.json: bad path '${path}'`);
        const kind = String(m?.type ?? "").split(".").pop();
        if (kind === "Pooling" && path) await fetchTo(`${path}/config.json`);
        if (kind === "Transformer" && path) at = `${path}/`;
      }
    }
    for (const f of HUB_FILES) await fetchTo(at + f, f !== "config.json");
    if (!(await fetchTo(`${at}model.safetensors`, true))) {
      if (!(await fetchTo(`${at}model.safetensors.index.json`, true))) {
        throw new Error(`${name} has no safetensors weights on the Hub (model.safetensors)`);
      }
      const index = JSON.parse(
        await readTextFileStrict(`${tmp}/${at}model.safetensors.index.json`),
      );
      const map = index?.weight_map;
      const shards = map && typeof map === "object" ? Object.values(map) : [];
      if (!shards.length || !shards.every((f) => typeof f === "string" && /^\w[\w.-]*$/.test(f))) {
        throw new Error(`${base}/model.safetensors.index.json: no usable weight_map`);
      }
      for (const shard of new Set(shards as string[])) await fetchTo(at + shard);
    }
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return dir;
}

/**
 * Loads an encoder by name: `use-lite`, a directory, or a Hub name (`org/model`).
 *
 * @example
 * ```ts
 * const model = await loadEncoder(gpu, "use-lite");
 * ```
 */
export async function loadEncoder(
  gpu: Gpu,
  spec: string,
  opts: LoadEncoderOptions = {},
): Promise<LoadedEncoder> {
  checkMaxLength(opts.maxLength);
  const useLite = async (weights?: Map<string, NamedTensor>, source?: string) => {
    if (opts.pooling !== undefined && opts.pooling !== "mean") {
      throw new ConfigError(
        source ? `${source}/config.json` : "use-lite",
        `USE-lite pools by the mean (part of its graph); pooling '${opts.pooling}' is not possible`,
      );
    }
    const model = await loadUseLite(gpu, { weights, maxLength: opts.maxLength, source });
    if (opts.prompts) model.text = textFormat(null, opts.prompts);
    return model;
  };
  if (spec === "use-lite") return await useLite();
  if (await isDir(spec)) {
    const configPath = `${spec}/config.json`;
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await readTextFileStrict(configPath));
    } catch (e) {
      throw new ConfigError(configPath, `cannot read the model config (${(e as Error).message})`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new ConfigError(configPath, `expected a JSON object, found ${JSON.stringify(raw)}`);
    }
    if (raw.model_type === USE_LITE_MODEL_TYPE) {
      const model = await useLite(await readModelWeights(spec), spec);
      model.sourceDir = spec;
      return model;
    }
    return await loadHfEncoder(gpu, spec, hfOptions(opts));
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(spec)) {
    return await loadHfEncoder(
      gpu,
      await downloadHubModel(spec, opts.cacheDir),
      hfOptions(opts),
    );
  }
  throw new Error(
    `model '${spec}' is neither 'use-lite', a model directory, nor a Hub name (org/model)`,
  );
}

/**
 * The sentence-transformers layout that says how `model` pools, normalises, truncates and
 * prompts: the one it was loaded with, updated to its current settings; null for USE-lite (its
 * pooling is part of its graph). BERT's tanh pooler (`pooler`, any family) has no Pooling mode
 * in sentence-transformers: the layout says `pooler`, which
 * {@link writeSentenceTransformersLayout} writes as `cls` plus a field of
 * `config_sentence_transformers.json` that {@link loadEncoder} reads back. sentence-transformers
 * loads such a directory but pools the first token's state without the pooler (its Transformer
 * module does not run it), so its embeddings differ from this library's.
 */
export function sentenceTransformersLayoutOf(
  model: LoadedEncoder,
): SentenceTransformersLayout | null {
  const pooling = model.config.pooling;
  if (model.config.family === "use-lite") return null;
  const text = model.text ?? textFormat(null);
  const prompts: Record<string, string> = { ...model.layout?.prompts };
  if (text.queryPrompt || "query" in prompts) prompts.query = text.queryPrompt;
  const docName = ["document", "passage", "corpus", "doc"].find((n) => n in prompts) ?? "document";
  if (text.documentPrompt || docName in prompts) prompts[docName] = text.documentPrompt;
  return {
    transformerPath: "",
    pooling,
    includePrompt: text.includePrompt,
    normalize: model.config.normalize,
    similarity: model.config.normalize ? "cosine" : "dot",
    maxSeqLength: model.maxLength,
    lowerCase: text.lowerCase,
    prompts,
    defaultPromptName: model.layout?.defaultPromptName ?? null,
  };
}

/**
 * Writes an encoder as a model directory that {@link loadEncoder} (and, for the BERT family,
 * Hugging Face and sentence-transformers) loads back: config.json, model.safetensors, tokenizer
 * files, the sentence-transformers layout ({@link sentenceTransformersLayoutOf}) and, with
 * `card`, a model card (README.md). The checkpoint reloads with the pooling (every pooling,
 * the tanh pooler and its weights included), normalisation, prompts and length it was saved with. Written to a temporary directory and renamed into place, so
 * a crash never leaves a half-written checkpoint.
 */
export async function saveEncoder(
  model: LoadedEncoder,
  dir: string,
  metadata: Record<string, string> = {},
  card?: ModelCardInfo,
): Promise<void> {
  const tmp = `${dir}.tmp-${crypto.randomUUID()}`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    const tensors = new Map<string, NamedTensor>();
    for (const [name, t] of model.named) {
      tensors.set(name, { shape: [...t.shape], data: await t.read() as Float32Array });
    }
    await writeSafetensors(`${tmp}/model.safetensors`, tensors, { format: "pt", ...metadata });
    if (model.config.family === "use-lite") {
      const assets = await locateUseLite();
      await Deno.writeTextFile(
        `${tmp}/config.json`,
        JSON.stringify({ model_type: USE_LITE_MODEL_TYPE, ...USE_LITE_CONFIG }, null, 2),
      );
      await Deno.writeFile(`${tmp}/vocab.json`, await Deno.readFile(assets.vocabJson));
    } else {
      if (!model.sourceDir) throw new Error("saveEncoder: the model has no source directory");
      for (
        const f of ["config.json", ...HUB_FILES.slice(1), "special_tokens_map.json", "vocab.txt"]
      ) {
        try {
          await Deno.copyFile(`${model.sourceDir}/${f}`, `${tmp}/${f}`);
        } catch (e) {
          if (f === "config.json" || f === "tokenizer.json") throw e;
        }
      }
    }
    const layout = sentenceTransformersLayoutOf(model);
    if (layout) await writeSentenceTransformersLayout(tmp, layout, model.config.hidden);
    // The card shows sentence-transformers usage only where it gives this library's embeddings.
    if (card) {
      await writeModelCard(tmp, {
        ...card,
        sentenceTransformers: layout !== null && layout.pooling !== "pooler",
      });
    }
    await replaceDir(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * The sentence-transformers model layout, read and written: `modules.json` (Transformer,
 * Pooling, Normalize), `1_Pooling/config.json`, `sentence_bert_config.json` and
 * `config_sentence_transformers.json`. What a directory declares decides how the loader pools,
 * normalises, truncates, lower-cases and prompts; a module this library does not implement (a
 * Dense layer, for instance) is an error naming it, never a silent skip.
 *
 * @example
 * ```ts
 * const layout = await readSentenceTransformersLayout("models/all-MiniLM-L6-v2");
 * // { pooling: "mean", normalize: true, maxSeqLength: 256, prompts: {}, ... }
 * ```
 *
 * @module
 */
import { DataFormatError } from "../data/types.ts";
import { readJsonFile } from "../data/lines.ts";
import { writeTextFileAtomic } from "../util/fs.ts";
import type { Pooling } from "./config.ts";

/** The poolings a sentence-transformers directory may declare that this library implements. */
export type StPooling = Extract<Pooling, "cls" | "mean" | "max" | "lasttoken">;

/**
 * The field of `config_sentence_transformers.json` that records a pooling sentence-transformers'
 * Pooling module cannot express: `"pooler"` (BERT's tanh pooler over the first token). The
 * Pooling module then declares `cls`, the nearest it has. sentence-transformers ignores the field
 * (and keeps it when it saves the model again), so such a directory still loads there, but pools
 * the first token's state without the pooler's dense layer and tanh: its embeddings differ from
 * this library's. {@link readSentenceTransformersLayout} reads the field back, so a checkpoint
 * reloads here with the pooling it was saved with.
 */
export const SELFMARGIN_POOLING_FIELD = "selfmargin_pooling";

/** Similarity functions sentence-transformers names; retrieval here ranks by the dot product. */
export type StSimilarity = "cosine" | "dot";

/** What a sentence-transformers directory declares, as the loader applies it. */
export interface SentenceTransformersLayout {
  /** Where the Transformer module's files are, relative to the directory ("" for the top). */
  transformerPath: string;
  /**
   * The pooling of `1_Pooling/config.json`, or `pooler` where `config_sentence_transformers.json`
   * records it ({@link SELFMARGIN_POOLING_FIELD}; the Pooling module then declares `cls`).
   */
  pooling: StPooling | "pooler";
  /** Whether a prompt's tokens take part in pooling (`include_prompt`; default true). */
  includePrompt: boolean;
  /**
   * Whether embeddings are L2-normalised: a `Normalize` module, or `similarity_fn_name` cosine
   * (so that ranking by the dot product ranks as sentence-transformers' similarity would).
   */
  normalize: boolean;
  /** The `similarity_fn_name`; absent: cosine with a Normalize module, else dot. */
  similarity: StSimilarity;
  /** `max_seq_length` of `sentence_bert_config.json`, if set. */
  maxSeqLength?: number;
  /** `do_lower_case` of `sentence_bert_config.json` (default false). */
  lowerCase: boolean;
  /** Every prompt by name (`prompts` of `config_sentence_transformers.json`). */
  prompts: Record<string, string>;
  /** The prompt used when none is named (`default_prompt_name`), or null. */
  defaultPromptName: string | null;
}

/** Names of the document prompt, in the order they are looked for. */
const DOCUMENT_PROMPT_NAMES = ["document", "passage", "corpus", "doc"];

/** The roles a text plays in retrieval. */
export type TextRole = "query" | "document";

/**
 * The prompt for `role`: `prompts.query` for queries, the first of `prompts.document`,
 * `passage`, `corpus`, `doc` for documents, else the default prompt, else "".
 */
export function promptFor(layout: SentenceTransformersLayout, role: TextRole): string {
  const names = role === "query" ? ["query"] : DOCUMENT_PROMPT_NAMES;
  const name = names.find((n) => n in layout.prompts) ?? layout.defaultPromptName;
  return name !== null ? layout.prompts[name] ?? "" : "";
}

const POOLING_FIELDS: Record<string, StPooling | null> = {
  pooling_mode_cls_token: "cls",
  pooling_mode_mean_tokens: "mean",
  pooling_mode_max_tokens: "max",
  pooling_mode_lasttoken: "lasttoken",
  pooling_mode_mean_sqrt_len_tokens: null,
  pooling_mode_weightedmean_tokens: null,
};

const MODULES = ["Transformer", "Pooling", "Normalize"] as const;

/** A JSON object file (`null` when optional and missing); anything else names the file. */
async function readObject(path: string, optional = false): Promise<Record<string, unknown> | null> {
  const v = await readJsonFile(path, { optional });
  if (v === null && optional) return null;
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new DataFormatError(path, 0, `expected a JSON object, found ${JSON.stringify(v)}`);
  }
  return v as Record<string, unknown>;
}

/**
 * Reads the sentence-transformers layout of `dir`, or null when it has no `modules.json`.
 * Throws {@link DataFormatError} naming the file and the field for a module, pooling mode or
 * similarity this library does not implement, and for malformed files.
 */
export async function readSentenceTransformersLayout(
  dir: string,
): Promise<SentenceTransformersLayout | null> {
  const modulesPath = `${dir}/modules.json`;
  const modules = await readJsonFile(modulesPath, { optional: true });
  if (modules === null) return null;
  if (!Array.isArray(modules) || modules.length === 0) {
    throw new DataFormatError(modulesPath, 0, "expected a non-empty array of modules");
  }
  const found = new Map<string, string>();
  modules.forEach((m, i) => {
    const type = (m as Record<string, unknown> | null)?.type;
    const path = (m as Record<string, unknown> | null)?.path ?? "";
    if (typeof type !== "string" || typeof path !== "string") {
      throw new DataFormatError(modulesPath, 0, `module ${i}: expected string fields type, path`);
    }
    const kind = type.split(".").pop()!;
    const known = MODULES.find((k) => k === kind);
    if (!known || found.has(known)) {
      throw new DataFormatError(
        modulesPath,
        0,
        `module ${i} (${type}${path ? `, path ${path}` : ""}) is ${
          known ? "repeated" : "not implemented by selfmargin"
        }: the supported pipeline is Transformer, Pooling, then optionally Normalize`,
      );
    }
    if (known !== MODULES[found.size]) {
      throw new DataFormatError(
        modulesPath,
        0,
        `module ${i} (${type}) is out of order: expected ${MODULES[found.size]}`,
      );
    }
    found.set(known, path);
  });
  if (!found.has("Pooling")) {
    throw new DataFormatError(modulesPath, 0, "no Pooling module: the pooling is not declared");
  }

  const poolingPath = `${dir}/${found.get("Pooling")}/config.json`;
  const pc = (await readObject(poolingPath))!;
  const modes = Object.entries(POOLING_FIELDS).filter(([k]) => pc[k] === true);
  if (modes.length !== 1) {
    throw new DataFormatError(
      poolingPath,
      0,
      modes.length === 0
        ? "no pooling_mode_* field is true"
        : `several pooling modes at once (${
          modes.map(([k]) => k).join(", ")
        }): concatenated poolings are not supported`,
    );
  }
  const [field, pooling] = modes[0];
  if (pooling === null) {
    throw new DataFormatError(
      poolingPath,
      0,
      `${field} is not supported (cls, mean, max and lasttoken are)`,
    );
  }
  if (pc.include_prompt !== undefined && typeof pc.include_prompt !== "boolean") {
    throw new DataFormatError(poolingPath, 0, "field include_prompt: expected true or false");
  }

  const sbPath = `${dir}/sentence_bert_config.json`;
  const sb = await readObject(sbPath, true) ?? {};
  let maxSeqLength: number | undefined;
  if (sb.max_seq_length !== undefined && sb.max_seq_length !== null) {
    const v = sb.max_seq_length;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      throw new DataFormatError(sbPath, 0, "field max_seq_length: expected an integer >= 1");
    }
    maxSeqLength = v;
  }
  if (sb.do_lower_case !== undefined && typeof sb.do_lower_case !== "boolean") {
    throw new DataFormatError(sbPath, 0, "field do_lower_case: expected true or false");
  }

  const stPath = `${dir}/config_sentence_transformers.json`;
  const st = await readObject(stPath, true) ?? {};
  const prompts: Record<string, string> = {};
  if (st.prompts !== undefined && st.prompts !== null) {
    if (typeof st.prompts !== "object" || Array.isArray(st.prompts)) {
      throw new DataFormatError(stPath, 0, "field prompts: expected an object of strings");
    }
    for (const [k, v] of Object.entries(st.prompts as Record<string, unknown>)) {
      if (typeof v !== "string") {
        throw new DataFormatError(stPath, 0, `field prompts.${k}: expected a string`);
      }
      prompts[k] = v;
    }
  }
  const dp = st.default_prompt_name ?? null;
  if (dp !== null && (typeof dp !== "string" || !(dp in prompts))) {
    throw new DataFormatError(
      stPath,
      0,
      `field default_prompt_name: ${JSON.stringify(dp)} is not one of the prompts`,
    );
  }
  const recorded = st[SELFMARGIN_POOLING_FIELD];
  if (recorded !== undefined && recorded !== null) {
    if (recorded !== "pooler") {
      throw new DataFormatError(
        stPath,
        0,
        `field ${SELFMARGIN_POOLING_FIELD}: ${
          JSON.stringify(recorded)
        } is not supported (only "pooler", which the Pooling module cannot express)`,
      );
    }
    if (pooling !== "cls") {
      throw new DataFormatError(
        stPath,
        0,
        `field ${SELFMARGIN_POOLING_FIELD}: "pooler" pools the first token, but ${poolingPath} ` +
          `declares ${field} (expected pooling_mode_cls_token)`,
      );
    }
  }
  // Without a similarity_fn_name, the embeddings are ranked as they come: by the dot product,
  // which is the cosine when a Normalize module is there.
  const sim = st.similarity_fn_name ?? (found.has("Normalize") ? "cosine" : "dot");
  if (sim !== "cosine" && sim !== "dot") {
    throw new DataFormatError(
      stPath,
      0,
      `field similarity_fn_name: ${JSON.stringify(sim)} is not supported (cosine, dot)`,
    );
  }
  return {
    transformerPath: found.get("Transformer") ?? "",
    pooling: recorded === "pooler" ? "pooler" : pooling,
    includePrompt: pc.include_prompt !== false,
    normalize: found.has("Normalize") || sim === "cosine",
    similarity: sim,
    ...(maxSeqLength !== undefined ? { maxSeqLength } : {}),
    lowerCase: sb.do_lower_case === true,
    prompts,
    defaultPromptName: dp,
  };
}

/**
 * Writes the sentence-transformers layout into `dir` (beside the Transformer's `config.json`,
 * weights and tokenizer, which the caller writes): `modules.json`, `1_Pooling/config.json`,
 * `2_Normalize/` when normalising, `sentence_bert_config.json` and
 * `config_sentence_transformers.json`. `hidden` is the embedding width. The `pooler` pooling is
 * written as `cls` in `1_Pooling/config.json` and recorded as {@link SELFMARGIN_POOLING_FIELD} in
 * `config_sentence_transformers.json` (sentence-transformers would pool the first token without
 * the tanh pooler; this library reads the pooler back).
 */
export async function writeSentenceTransformersLayout(
  dir: string,
  layout: SentenceTransformersLayout,
  hidden: number,
): Promise<void> {
  const modules = [
    { idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
    { idx: 1, name: "1", path: "1_Pooling", type: "sentence_transformers.models.Pooling" },
  ];
  if (layout.normalize) {
    modules.push({
      idx: 2,
      name: "2",
      path: "2_Normalize",
      type: "sentence_transformers.models.Normalize",
    });
    await Deno.mkdir(`${dir}/2_Normalize`, { recursive: true });
  }
  const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";
  await writeTextFileAtomic(`${dir}/modules.json`, json(modules));
  await Deno.mkdir(`${dir}/1_Pooling`, { recursive: true });
  const pooling: Record<string, unknown> = { word_embedding_dimension: hidden };
  for (const [field, mode] of Object.entries(POOLING_FIELDS)) {
    pooling[field] = mode === (layout.pooling === "pooler" ? "cls" : layout.pooling);
  }
  pooling.include_prompt = layout.includePrompt;
  await writeTextFileAtomic(`${dir}/1_Pooling/config.json`, json(pooling));
  const sb: Record<string, unknown> = { do_lower_case: layout.lowerCase };
  if (layout.maxSeqLength !== undefined) sb.max_seq_length = layout.maxSeqLength;
  await writeTextFileAtomic(`${dir}/sentence_bert_config.json`, json(sb));
  await writeTextFileAtomic(
    `${dir}/config_sentence_transformers.json`,
    json({
      prompts: layout.prompts,
      default_prompt_name: layout.defaultPromptName,
      similarity_fn_name: layout.similarity,
      ...(layout.pooling === "pooler" ? { [SELFMARGIN_POOLING_FIELD]: "pooler" } : {}),
    }),
  );
}

/** How a model takes its texts: prompts per role, lower-casing, prompts in pooling or not. */
export interface TextFormat {
  /** Prepended to every query. */
  queryPrompt: string;
  /** Prepended to every document. */
  documentPrompt: string;
  /** Lower-case texts (and prompts) before tokenizing. */
  lowerCase: boolean;
  /** Whether a prompt's tokens take part in pooling. */
  includePrompt: boolean;
}

/** Prompts that override a model's own (an absent role keeps the model's prompt). */
export interface PromptOverrides {
  /** The query prompt ("" for none). */
  query?: string;
  /** The document prompt ("" for none). */
  document?: string;
}

/**
 * The text format of a model with `layout` (null: no sentence-transformers layout, so no
 * prompts), prompts overridden by `prompts`.
 */
export function textFormat(
  layout: SentenceTransformersLayout | null,
  prompts: PromptOverrides = {},
): TextFormat {
  return {
    queryPrompt: prompts.query ?? (layout ? promptFor(layout, "query") : ""),
    documentPrompt: prompts.document ?? (layout ? promptFor(layout, "document") : ""),
    lowerCase: layout?.lowerCase ?? false,
    includePrompt: layout?.includePrompt ?? true,
  };
}

/**
 * The tokenizer interface every encoder uses, and a loader for Hugging Face `tokenizer.json`
 * files (WordPiece for BERT, Unigram/BPE for others) built on Hugging Face's own JS tokenizers
 * (`@huggingface/tokenizers`, the tokenizer half of transformers.js).
 *
 * @module
 */
import { Tokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import { readTextFileStrict } from "../data/lines.ts";
import { DataFormatError } from "../data/types.ts";

/**
 * The `model.type`s of `tokenizer.json` that Hugging Face's JS tokenizers implement (their
 * Rust library's `WordLevel` is not among them).
 */
export const SUPPORTED_TOKENIZER_MODELS: readonly string[] = ["WordPiece", "BPE", "Unigram"];

/** The ids of one text, after truncation. */
export interface TokenizedText {
  /** Token ids, special tokens included, at most the requested length. */
  ids: number[];
  /** Whether tokens were dropped to fit the length. */
  truncated: boolean;
}

/** What an encoder needs from a tokenizer. */
export interface TextTokenizer {
  /** Tokenizes `text` into at most `maxLength` ids (special tokens included). */
  encode(text: string, maxLength: number): TokenizedText;
  /** The id used for padding. */
  readonly padId: number;
  /**
   * One more than the largest id the tokenizer can produce, when known: an embedding table needs
   * at least this many rows.
   */
  readonly vocabSize?: number;
  /**
   * Everything that decides the ids, as text (the tokenizer files' content), so that caches of
   * encoded texts can tell two tokenizers apart.
   */
  fingerprint?(): string;
}

/** The part of Hugging Face's `Tokenizer` that this project uses. */
export interface TokenizerCore {
  /** Token ids (and tokens) of a text. */
  encode(
    text: string,
    options?: {
      add_special_tokens?: boolean;
      text_pair?: string | null;
      return_token_type_ids?: boolean | null;
    },
  ): { ids: number[]; token_type_ids?: number[] };
  /** Token strings of a text. */
  tokenize(text: string): string[];
  /** The id of a token string. */
  token_to_id(token: string): number | undefined;
}

/** A `tokenizer.json` tokenizer (BERT WordPiece, MPNet, ...), with special tokens added. */
export class HfTokenizer implements TextTokenizer {
  /** The underlying Hugging Face tokenizer. */
  readonly inner: TokenizerCore;
  /** The padding id, from `tokenizer_config.json`'s pad token. */
  readonly padId: number;
  /** One more than the largest id in the vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** The file the tokenizer came from, as error messages name it. */
  readonly source: string;
  private readonly json: Record<string, unknown>;
  private readonly config: Record<string, unknown>;

  /**
   * Creates an instance. A `model.type` other than {@link SUPPORTED_TOKENIZER_MODELS} is a
   * {@link TokenizerError} (the JS library would fall back to a model whose ids are undefined).
   * @param tokenizerJson the parsed `tokenizer.json`
   * @param config the parsed `tokenizer_config.json` (may be empty)
   * @param source the file it was read from, for error messages
   */
  constructor(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown> = {},
    source = "tokenizer.json",
  ) {
    this.source = source;
    const model = tokenizerJson.model;
    const type = model !== null && typeof model === "object"
      ? (model as { type?: unknown }).type
      : undefined;
    if (typeof type !== "string" || !SUPPORTED_TOKENIZER_MODELS.includes(type)) {
      const found = model === null || typeof model !== "object"
        ? "there is no model object"
        : type === undefined
        ? "model.type is missing"
        : `model.type is ${JSON.stringify(type)}`;
      throw new TokenizerError(
        source,
        `not a tokenizer this project can use: ${found}; supported model types: ` +
          `${SUPPORTED_TOKENIZER_MODELS.join(", ")} (those of Hugging Face's JS tokenizers)`,
      );
    }
    this.inner = new Tokenizer(tokenizerJson, config);
    this.json = tokenizerJson;
    this.config = config;
    this.vocabSize = largestId(tokenizerJson) + 1;
    const padToken = typeof config.pad_token === "string"
      ? config.pad_token
      : (config.pad_token as { content?: string } | undefined)?.content ??
        ((tokenizerJson.padding as { pad_token?: string } | null)?.pad_token) ?? "[PAD]";
    this.padId = this.inner.token_to_id(padToken) ?? 0;
  }

  /** The parsed `tokenizer.json` and `tokenizer_config.json`, as JSON text. */
  fingerprint(): string {
    return JSON.stringify({ tokenizer: this.json, config: this.config });
  }

  /**
   * Tokenizes a (query, document) pair for a BERT cross-encoder: `[CLS] a [SEP] b [SEP]` with
   * segment ids, `longest_first` truncation to `maxLength` ({@link bertPair}). Throws a
   * {@link TokenizerError} when this tokenizer has no `[CLS]`/`[SEP]` or its own pair template
   * (the post-processor) lays pairs out otherwise.
   */
  encodePair(a: string, b: string, maxLength: number): TokenizedPair {
    const cls = this.inner.token_to_id("[CLS]"), sep = this.inner.token_to_id("[SEP]");
    if (cls === undefined || sep === undefined) {
      throw new TokenizerError(
        this.source,
        "has no [CLS] or [SEP] token: not a BERT pair tokenizer",
      );
    }
    const aIds = this.inner.encode(a, { add_special_tokens: false }).ids;
    const bIds = this.inner.encode(b, { add_special_tokens: false }).ids;
    checkIds(aIds, this.source, a);
    checkIds(bIds, this.source, b);
    const pair = bertPair(aIds, bIds, cls, sep, maxLength);
    if (!pair.truncated) {
      const lib = this.inner.encode(a, {
        text_pair: b,
        add_special_tokens: true,
        return_token_type_ids: true,
      });
      if (
        lib.ids.join() !== pair.ids.join() ||
        (lib.token_type_ids && lib.token_type_ids.join() !== pair.typeIds.join())
      ) {
        throw new TokenizerError(
          this.source,
          "its pair template is not BERT's [CLS] a [SEP] b [SEP]: not a BERT cross-encoder tokenizer",
        );
      }
    }
    return pair;
  }

  /**
   * Tokenizes with the post-processor's special tokens (`[CLS] ... [SEP]`, `<s> ... </s>`);
   * when too long, content tokens are dropped from the end and the closing special token kept.
   */
  encode(text: string, maxLength: number): TokenizedText {
    const ids = this.inner.encode(text, { add_special_tokens: true }).ids;
    checkIds(ids, this.source, text);
    if (ids.length <= maxLength) return { ids, truncated: false };
    const closing = ids[ids.length - 1];
    const specials = new Set(this.inner.encode("", { add_special_tokens: true }).ids);
    const kept = ids.slice(0, Math.max(0, maxLength - (specials.has(closing) ? 1 : 0)));
    if (specials.has(closing)) kept.push(closing);
    return { ids: kept, truncated: true };
  }
}

/** A tokenized pair of texts, as a cross-encoder reads it. */
export interface TokenizedPair {
  /** `[CLS] a [SEP] b [SEP]` (BERT's pair template), special tokens included. */
  ids: number[];
  /** 0 over `[CLS] a [SEP]`, 1 over `b [SEP]`. */
  typeIds: number[];
  /** Whether tokens were dropped to fit the length. */
  truncated: boolean;
}

/**
 * Tokenizes a pair in BERT's layout, `[CLS] a [SEP] b [SEP]` with segment ids 0 then 1, cutting
 * to `maxLength` as Hugging Face's `longest_first` truncation does (one token at a time from the
 * end of the longer text, the second on ties). `cls` and `sep` are the special ids; the layout is
 * BERT's (cross-encoders such as ms-marco-MiniLM-L-6-v2), not checked against the post-processor
 * here: {@link HfTokenizer.encodePair} compares it with the library's own pair encoding.
 */
export function bertPair(
  a: readonly number[],
  b: readonly number[],
  cls: number,
  sep: number,
  maxLength: number,
): TokenizedPair {
  if (!(maxLength >= 3)) throw new RangeError(`a pair needs maxLength >= 3, got ${maxLength}`);
  let la = a.length, lb = b.length;
  const room = maxLength - 3;
  const truncated = la + lb > room;
  while (la + lb > room) {
    if (la > lb) la--;
    else lb--;
  }
  const ids = [cls, ...a.slice(0, la), sep, ...b.slice(0, lb), sep];
  const typeIds = ids.map((_, i) => (i < la + 2 ? 0 : 1));
  return { ids, typeIds, truncated };
}

/**
 * Throws a {@link TokenizerError} naming `source` and the text unless every id is a
 * non-negative integer (a malformed vocabulary gives `undefined` or fractional ids, which an
 * embedding lookup would otherwise read as garbage rows).
 */
export function checkIds(ids: readonly unknown[], source: string, text: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      const shown = text.length > 60 ? `${text.slice(0, 60)}...` : text;
      throw new TokenizerError(
        source,
        `the tokenizer gave id ${String(id)} (token ${i + 1}) for the text ` +
          `${JSON.stringify(shown)}: ids must be non-negative integers (is the vocabulary ` +
          `malformed?)`,
      );
    }
  }
}

/** The largest id of a `tokenizer.json`'s model vocabulary and added tokens (-1 if none). */
function largestId(json: Record<string, unknown>): number {
  let max = -1;
  const vocab = (json.model as { vocab?: unknown } | undefined)?.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1; // Unigram: [token, score] pairs, id = index
  else if (vocab && typeof vocab === "object") {
    for (const id of Object.values(vocab)) if (typeof id === "number" && id > max) max = id;
  }
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    const id = (t as { id?: unknown })?.id;
    if (typeof id === "number" && id > max) max = id;
  }
  return max;
}

/**
 * Raised for a tokenizer file that cannot be read or used; the message names the file. A
 * {@link DataFormatError} (line 0), so scripts report it in one line as bad input.
 */
export class TokenizerError extends DataFormatError {
  /**
   * Creates an instance.
   * @param file the offending file
   * @param detail what is wrong
   */
  constructor(file: string, detail: string) {
    super(file, 0, detail);
    this.name = "TokenizerError";
  }
}

/** Reads a JSON object from `path`; `null` when the file does not exist and `optional`. */
async function readJsonObject(
  path: string,
  what: string,
  optional: boolean,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readTextFileStrict(path);
  } catch (e) {
    if (e instanceof DataFormatError) throw e; // invalid UTF-8, at its line
    if (optional && e instanceof Deno.errors.NotFound) return null;
    throw new TokenizerError(path, `cannot read the ${what} (${(e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(path, `the ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TokenizerError(path, `the ${what} is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/** Text tokenized once at load, to find broken tokenizers before they are used. */
const PROBE_TEXT = "a Hello, world! 42 Caf\u00e9 na\u00efve \u00fcber-x";

/**
 * Loads `tokenizer.json` (and `tokenizer_config.json` if present) from a model directory. A
 * missing or malformed `tokenizer.json` (invalid UTF-8 or JSON, a `model.type` other than
 * {@link SUPPORTED_TOKENIZER_MODELS}, ids that are not non-negative integers for a sample
 * text), or a `tokenizer_config.json` that is there but not a JSON object, is an error naming the
 * file.
 */
export async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  const path = `${dir}/tokenizer.json`;
  const json = (await readJsonObject(path, "tokenizer", false))!;
  const configPath = `${dir}/tokenizer_config.json`;
  const config = await readJsonObject(configPath, "tokenizer config", true) ?? {};
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new HfTokenizer(json, config, path);
    // A structurally broken tokenizer.json often fails only when used.
    tokenizer.encode(PROBE_TEXT, 64);
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    throw new TokenizerError(path, `not a tokenizer this project can use: ${(e as Error).message}`);
  }
  if (tokenizer.vocabSize < 1) throw new TokenizerError(path, "the tokenizer has no vocabulary");
  return tokenizer;
}

/**
 * The tokenizer interface every encoder uses, and a loader for Hugging Face `tokenizer.json`
 * files (WordPiece for BERT, Unigram/BPE for others) built on Hugging Face's own JS tokenizers
 * (`@huggingface/tokenizers`, the tokenizer half of transformers.js).
 *
 * @module
 */
import { Tokenizer } from "npm:@huggingface/tokenizers@0.2.0";

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
}

/** The part of Hugging Face's `Tokenizer` that this project uses. */
export interface TokenizerCore {
  /** Token ids (and tokens) of a text. */
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
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

  /**

   * Creates an instance.
   * @param tokenizerJson the parsed `tokenizer.json`
   * @param config the parsed `tokenizer_config.json` (may be empty)
   */
  constructor(tokenizerJson: Record<string, unknown>, config: Record<string, unknown> = {}) {
    this.inner = new Tokenizer(tokenizerJson, config);
    const padToken = typeof config.pad_token === "string"
      ? config.pad_token
      : (config.pad_token as { content?: string } | undefined)?.content ??
        ((tokenizerJson.padding as { pad_token?: string } | null)?.pad_token) ?? "[PAD]";
    this.padId = this.inner.token_to_id(padToken) ?? 0;
  }

  /**
   * Tokenizes with the post-processor's special tokens (`[CLS] ... [SEP]`, `<s> ... </s>`);
   * when too long, content tokens are dropped from the end and the closing special token kept.
   */
  encode(text: string, maxLength: number): TokenizedText {
    const ids = this.inner.encode(text, { add_special_tokens: true }).ids;
    if (ids.length <= maxLength) return { ids, truncated: false };
    const closing = ids[ids.length - 1];
    const specials = new Set(this.inner.encode("", { add_special_tokens: true }).ids);
    const kept = ids.slice(0, Math.max(0, maxLength - (specials.has(closing) ? 1 : 0)));
    if (specials.has(closing)) kept.push(closing);
    return { ids: kept, truncated: true };
  }
}

/** Loads `tokenizer.json` (and `tokenizer_config.json` if present) from a model directory. */
export async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  const path = `${dir}/tokenizer.json`;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the tokenizer (${(e as Error).message})`);
  }
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  } catch {
    // tokenizer_config.json is optional; defaults apply.
  }
  return new HfTokenizer(json, config);
}

/**
 * The Universal Sentence Encoder Lite tokenizer, built with Hugging Face's tokenizers
 * (`npm:@huggingface/tokenizers`, the tokenizers of transformers.js) as a Unigram model over the
 * 8000 SentencePiece pieces of `vocab.json`, configured to give the ids of the TF.js USE tokenizer
 * (`@tensorflow-models/universal-sentence-encoder@1.3.3`, `dist/tokenizer`).
 *
 * What the TF.js tokenizer does, and the configuration that reproduces it:
 * - text -> NFKC; if non-empty, prefix `▁` and replace every U+0020 space by `▁` (no collapsing,
 *   no trimming; tabs and newlines stay as they are): normalizers `NFKC`, `Prepend("▁")`,
 *   `Replace(" " -> "▁")`; one lattice over the whole text. Empty text gives no ids.
 * - Viterbi over the pieces' scores, ids = vocabulary index (no offset; the model's embedding
 *   table has 8002 rows, ids stay below 8000). The 6 reserved entries (0 `�` = unknown, `<s>`,
 *   `</s>`, `extra_token_id_1..3`) are not in its trie, so they never match text: here their
 *   strings get a leading U+0020, which the normalizer has removed from any input.
 * - 7 scores are `null` in `vocab.json`; TF.js adds them as numbers, i.e. as 0: set to 0 here.
 * - a duplicated piece (`”5`, ids 230, 238, 4464): the last id wins in both.
 * - characters no piece starts with become the unknown id 0; runs of them fuse into one 0.
 *   TF.js scores an unknown node 0, HF `min score - 10`; every character that occurs in any
 *   piece is also a single-character piece, so both put unknown nodes at exactly the same
 *   positions, every segmentation contains all of them, and the difference is a constant.
 * - TF.js treats a running best score of exactly 0 as "unset" and replaces it with the next
 *   candidate, so a zero-score first piece never survives (`":)"` -> `▁ : )`, not `▁:)`). The
 *   only such pieces are `▁:` `▁:)` `▁:(` `▁:-)` (null scores), which are all the pieces that
 *   start with `▁:`: a `Split` pre-tokenizer isolating a leading `▁` before `:` forbids exactly
 *   them.
 *
 * Known divergence, not expressible as a configuration (tests/use_tokenizer_test.ts checks it is
 * the only one): in a run of one repeated character, the two orders of the same pieces tie
 * exactly (`999` as `99|9` or `9|99`; same multiset, so equal under any scores), and TF.js takes
 * the shorter last piece (`>=` over start positions) while tokenizers.js takes the longer one
 * (`>` over end nodes in begin order). Measured: 37 of 53,272 SciFact sentences differ, all such
 * ties.
 *
 * @example
 * ```ts
 * import { loadUseTokenizer } from "./use_tokenizer.ts";
 * const tok = await loadUseTokenizer();
 * console.log(tok.ids("Hello world.")); // [341, 4125, 311, 6]
 * ```
 *
 * @module
 */
import { Tokenizer } from "npm:@huggingface/tokenizers@0.2.0";
import {
  loadUseLiteVocab,
  locateUseLite,
  type LocateUseLiteOptions,
  type VocabEntry,
} from "../models/use_lite_assets.ts";
import type { TextTokenizer, TokenizedText, TokenizerCore } from "./tokenizer.ts";

/** The number of reserved entries at the start of the USE vocabulary (never produced by text). */
export const USE_RESERVED_SYMBOLS = 6;

/** The id of the unknown piece. */
export const USE_UNK_ID = 0;

/**
 * Builds the in-memory `tokenizer.json` equivalent (Unigram model, normalizers, Metaspace
 * decoder) from the `[piece, score]` pairs of `vocab.json`.
 */
export function useTokenizerJson(vocab: readonly VocabEntry[]): Record<string, unknown> {
  const pieces: [string, number][] = vocab.map(([piece, score], i) => [
    // Reserved symbols cannot match: normalized text has no U+0020 left.
    i < USE_RESERVED_SYMBOLS ? ` ${piece}` : piece,
    score ?? 0, // TF.js: `null + x === x`
  ]);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFKC" },
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    // TF.js treats a running best score of exactly 0 as unset, so its Viterbi never keeps a
    // zero-score first piece; the only pieces that could be one are `▁:` `▁:)` `▁:(` `▁:-)`
    // (scores null -> 0; every piece starting with `▁:` is one of them). Isolating a leading
    // `▁` before `:` forbids exactly those.
    pre_tokenizer: {
      type: "Split",
      pattern: { Regex: "\\A\u2581(?=:)" },
      behavior: "Isolated",
      invert: false,
    },
    model: { type: "Unigram", unk_id: USE_UNK_ID, vocab: pieces, byte_fallback: false },
    post_processor: null,
    decoder: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true },
  };
}

/** The longest input the USE-lite graph reads; it drops tokens beyond (ClipToMaxLength). */
export const USE_MAX_LENGTH = 128;

/** The USE-lite tokenizer: text to USE vocabulary ids (no special tokens, no offset). */
export class UseTokenizer implements TextTokenizer {
  /** The underlying Hugging Face tokenizer. */
  readonly hf: TokenizerCore;
  /**
   * USE has no padding token: padded positions are masked out by the encoder, so any valid id
   * does; 0 (unknown) is used.
   */
  readonly padId: number = USE_UNK_ID;
  /** One more than the largest id: the number of vocabulary entries (ids are their indices). */
  readonly vocabSize: number;
  private readonly json: Record<string, unknown>;

  /**
   * Builds the Hugging Face Unigram tokenizer from the vocabulary.
   * @param vocab the `[piece, score]` pairs of `vocab.json`
   */
  constructor(readonly vocab: readonly VocabEntry[]) {
    this.json = useTokenizerJson(vocab);
    this.hf = new Tokenizer(this.json, {});
    this.vocabSize = vocab.length;
  }

  /**
   * Everything that decides the ids, as text: the `tokenizer.json` equivalent built from the
   * vocabulary (pieces, scores, normalizers, pre-tokenizer), so that a changed vocabulary or
   * configuration gives another fingerprint.
   */
  fingerprint(): string {
    return JSON.stringify(this.json);
  }

  /** All token ids of one text (`[]` for empty text), as the TF.js USE tokenizer gives them. */
  ids(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** The first `maxLength` ids (default 128, the graph's clip), and whether any were dropped. */
  encode(text: string, maxLength: number = USE_MAX_LENGTH): TokenizedText {
    const ids = this.ids(text);
    return ids.length <= maxLength
      ? { ids, truncated: false }
      : { ids: ids.slice(0, maxLength), truncated: true };
  }

  /** Token strings of one text (unknown runs as their text). */
  tokenize(text: string): string[] {
    return this.hf.tokenize(text);
  }

  /** Ids back to text (`▁` as spaces, the leading one dropped, unknown as `�`). */
  decode(ids: readonly number[]): string {
    return ids.map((i) => this.vocab[i][0]).join("").replaceAll("\u2581", " ").replace(/^ /, "");
  }
}

/** Locates the USE-lite assets (see {@link locateUseLite}) and builds the tokenizer. */
export async function loadUseTokenizer(options: LocateUseLiteOptions = {}): Promise<UseTokenizer> {
  const assets = await locateUseLite(options);
  return new UseTokenizer(await loadUseLiteVocab(assets));
}

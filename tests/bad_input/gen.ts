/**
 * Generators for the bad-input suite (tests/bad_input_test.ts): a seeded mutator of valid seed
 * files, raw byte helpers, a hand-built safetensors writer that can lie about its header, a tiny
 * WordPiece `tokenizer.json`, and snapshots of files and directories to prove an output was left
 * untouched.
 *
 * @module
 */
import { Rng } from "../../src/util/rng.ts";

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/**
 * Bytes of a string taken one char code per byte (each code must be below 256), for content
 * that is deliberately not UTF-8: `raw("d\xff")` is the two bytes 0x64 0xff.
 */
export function raw(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new RangeError(`raw(): char code ${c} at ${i} is not a byte`);
    out[i] = c;
  }
  return out;
}

/** Bytes a mutation may insert: separators, quotes, brackets, digits, and non-UTF-8 bytes. */
const INSERTS = [...' \t\n\r"{}[],:-.0919e#'].map((c) => c.charCodeAt(0)).concat([0x00, 0xff]);

/**
 * A deterministic, seeded mutator of valid seed files. Each mutant applies one to three
 * operations: flip a bit, delete a byte, duplicate a byte, insert a separator-like or non-UTF-8
 * byte, truncate, delete a line, duplicate a line, swap two lines.
 *
 * @example
 * ```ts
 * for (const m of new Mutator(7).mutants(utf8("q1 0 d1 1\n"), 30)) console.log(m.ops, m.bytes);
 * ```
 */
export class Mutator {
  readonly #rng: Rng;

  /** @param seed any integer; equal seeds give equal mutants */
  constructor(seed: number) {
    this.#rng = new Rng(seed);
  }

  /**
   * `count` mutants of `seed`. With `region`, byte-level operations hit `[start, end)` only (a
   * safetensors header, say); line operations always act on the whole file.
   */
  mutants(
    seed: Uint8Array,
    count: number,
    region?: [start: number, end: number],
  ): { bytes: Uint8Array; ops: string }[] {
    const out: { bytes: Uint8Array; ops: string }[] = [];
    for (let i = 0; i < count; i++) {
      let bytes: Uint8Array = Uint8Array.from(seed);
      const ops: string[] = [];
      const n = 1 + this.#rng.int(3);
      for (let k = 0; k < n; k++) {
        const [r0, r1] = region ?? [0, bytes.length];
        const lo = Math.min(r0, bytes.length), hi = Math.max(lo, Math.min(r1, bytes.length));
        const at = lo + this.#rng.int(Math.max(1, hi - lo));
        const op = this.#rng.int(region ? 5 : 8);
        if (bytes.length === 0) break;
        switch (op) {
          case 0: {
            const bit = 1 << this.#rng.int(8);
            bytes[at] ^= bit;
            ops.push(`flip@${at}^${bit}`);
            break;
          }
          case 1:
            bytes = concat(bytes.subarray(0, at), bytes.subarray(at + 1));
            ops.push(`del@${at}`);
            break;
          case 2:
            bytes = concat(bytes.subarray(0, at + 1), bytes.subarray(at));
            ops.push(`dup@${at}`);
            break;
          case 3: {
            const b = INSERTS[this.#rng.int(INSERTS.length)];
            bytes = concat(bytes.subarray(0, at), Uint8Array.of(b), bytes.subarray(at));
            ops.push(`ins@${at}:${b}`);
            break;
          }
          case 4:
            bytes = bytes.slice(0, at);
            ops.push(`cut@${at}`);
            break;
          default: {
            const lines = splitKeepingEnds(bytes);
            const a = this.#rng.int(lines.length), b = this.#rng.int(lines.length);
            if (op === 5) lines.splice(a, 1);
            else if (op === 6) lines.splice(a, 0, lines[a]);
            else [lines[a], lines[b]] = [lines[b], lines[a]];
            bytes = concat(...lines);
            ops.push(
              `${["delline", "dupline", "swapline"][op - 5]}@${a}${op === 7 ? `,${b}` : ""}`,
            );
          }
        }
      }
      out.push({ bytes, ops: ops.join(" ") });
    }
    return out;
  }
}

function splitKeepingEnds(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) {
      lines.push(bytes.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  return lines.length ? lines : [bytes];
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A safetensors file built by hand: 8-byte little-endian header size, the header (an object,
 * serialised, or a string taken as is), then `data`. `headerSize` overrides the size field, to
 * write a file that lies about it.
 */
export function safetensorsBytes(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  headerSize?: bigint,
): Uint8Array {
  const h = utf8(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerSize ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** The byte range of a safetensors file's header (after the 8-byte size), for the mutator. */
export function safetensorsHeaderRange(bytes: Uint8Array): [number, number] {
  const size = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return [0, 8 + size];
}

const SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS = [
  "the",
  "of",
  "and",
  "in",
  "to",
  "a",
  "is",
  "cell",
  "cells",
  "protein",
  "gene",
  "virus",
  "brain",
  "blood",
  "drug",
  "study",
  "what",
  "does",
  "encode",
];

/**
 * A small WordPiece `tokenizer.json` in Hugging Face's format (BERT normalizer, `[CLS] A [SEP]`
 * template): special tokens 0-4, ASCII characters and `##` continuations, a few words, padded
 * with `[unusedN]` to exactly `size` entries (at least 200).
 */
export function tinyTokenizerJson(size = 512): Record<string, unknown> {
  const tokens = [...SPECIALS];
  const chars = [];
  for (let c = 33; c < 127; c++) {
    const ch = String.fromCharCode(c);
    if (ch < "A" || ch > "Z") chars.push(ch);
  }
  tokens.push(...chars, ...chars.filter((c) => /[a-z0-9]/.test(c)).map((c) => `##${c}`));
  tokens.push(...WORDS);
  if (tokens.length > size) throw new RangeError(`tinyTokenizerJson: size ${size} too small`);
  for (let i = 0; tokens.length < size; i++) tokens.push(`[unused${i}]`);
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const special = (t: string, type = 0) => ({ SpecialToken: { id: t, type_id: type } });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [special("[CLS]"), { Sequence: { id: "A", type_id: 0 } }, special("[SEP]")],
      pair: [
        special("[CLS]"),
        { Sequence: { id: "A", type_id: 0 } },
        special("[SEP]"),
        { Sequence: { id: "B", type_id: 1 } },
        special("[SEP]", 1),
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/** SHA-256 of bytes, hex. */
async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A snapshot of a file or a directory tree: relative path -> SHA-256 of the bytes (directories
 * map to "dir"); `{}` when the path does not exist. Two equal snapshots mean nothing was
 * written, created or removed.
 */
export async function snapshot(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string, rel: string): Promise<void> => {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(p);
    } catch {
      return;
    }
    if (info.isDirectory) {
      out[rel || "."] = "dir";
      const names: string[] = [];
      for await (const e of Deno.readDir(p)) names.push(e.name);
      for (const name of names.sort()) await walk(`${p}/${name}`, rel ? `${rel}/${name}` : name);
    } else {
      out[rel || "."] = await sha256(await Deno.readFile(p));
    }
  };
  await walk(path, "");
  return out;
}

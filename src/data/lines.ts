/**
 * Streaming line reading for big text files (runs, collections), without loading the whole
 * file into one string.
 *
 * @module
 */

import { DataFormatError } from "./types.ts";

/** One line of a file, without its terminator (`\n` or `\r\n`), and its 1-based number. */
export interface Line {
  /** The text of the line. */
  text: string;
  /** 1-based line number. */
  lineNo: number;
}

const NEWLINE = 10;
const CARRIAGE_RETURN = 13;
const BOM = 0xfeff;

/**
 * Yields the lines of a UTF-8 text file one at a time, in order. A final line without a
 * terminator is yielded too; an empty file yields nothing; a UTF-8 byte order mark at the start
 * of the file is skipped.
 *
 * The file must be valid UTF-8: the lines before the first invalid byte are yielded, then a
 * {@link DataFormatError} `FILE:LINE: invalid UTF-8 ...` is thrown at the line that holds it
 * (never a silent U+FFFD, which would merge distinct ids such as `d\xff` and `d\xfe`).
 *
 * @example
 * ```ts
 * import { readLines } from "./lines.ts";
 * for await (const { text, lineNo } of readLines("qrels.txt")) console.log(lineNo, text);
 * ```
 */
export async function* readLines(path: string): AsyncGenerator<Line> {
  const file = await Deno.open(path, { read: true });
  // Whole lines are decoded at once (a newline byte never occurs inside a multi-byte sequence),
  // so no decoder state crosses chunks; the BOM is removed by hand, at the start of the file only.
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let buf = new Uint8Array(1 << 20);
  let held = 0; // bytes of an unfinished line carried over, at the start of buf
  let lineNo = 0;
  let atStart = true;
  /** Decodes whole lines, or throws at the line of the first invalid byte. */
  const decode = (bytes: Uint8Array): string => {
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw invalidUtf8(path, bytes, lineNo);
    }
    if (atStart) {
      atStart = false;
      if (text.charCodeAt(0) === BOM) text = text.slice(1);
    }
    return text;
  };
  try {
    while (true) {
      if (held === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = await file.read(buf.subarray(held));
      if (n === null) break;
      const end = held + n;
      // Only the new bytes can hold a newline: the held ones were searched already.
      const found = buf.subarray(held, end).lastIndexOf(NEWLINE);
      if (found < 0) {
        held = end;
        continue;
      }
      const lastNl = held + found;
      let chunk: string;
      try {
        chunk = decode(buf.subarray(0, lastNl + 1));
      } catch (e) {
        // Yield the lines before the bad one, so that earlier errors are reported first.
        if (e instanceof InvalidUtf8) {
          for (const line of splitChunk(e.validPrefix, lineNo)) yield line;
          throw e.error;
        }
        throw e;
      }
      let start = 0;
      while (true) {
        const nl = chunk.indexOf("\n", start);
        if (nl < 0) break;
        const stop = nl > start && chunk.charCodeAt(nl - 1) === CARRIAGE_RETURN ? nl - 1 : nl;
        yield { text: chunk.slice(start, stop), lineNo: ++lineNo };
        start = nl + 1;
      }
      buf.copyWithin(0, lastNl + 1, end);
      held = end - lastNl - 1;
    }
    if (held > 0) {
      let rest: string;
      try {
        rest = decode(buf.subarray(0, held));
      } catch (e) {
        throw e instanceof InvalidUtf8 ? e.error : e;
      }
      if (rest.length > 0) {
        yield { text: rest.endsWith("\r") ? rest.slice(0, -1) : rest, lineNo: ++lineNo };
      }
    }
  } finally {
    file.close();
  }
}

/** Lines of decoded whole-line text, numbered after `lineNo`. */
function* splitChunk(text: string, lineNo: number): Generator<Line> {
  for (const line of splitLines(text)) yield { text: line.text, lineNo: lineNo + line.lineNo };
}

/** Thrown inside {@link readLines}: the error, and the decoded lines before the bad one. */
class InvalidUtf8 extends Error {
  constructor(readonly error: DataFormatError, readonly validPrefix: string) {
    super(error.message);
  }
}

/**
 * The error for `bytes` (whole lines following line `lineNo`) that failed a fatal decode: at
 * the line of the first invalid byte, with the decoded lines before it.
 */
function invalidUtf8(path: string, bytes: Uint8Array, lineNo: number): InvalidUtf8 {
  const at = invalidUtf8Offset(bytes);
  if (at < 0) {
    // Cannot happen (the decoder and the scan follow the same rules); say what is known.
    return new InvalidUtf8(new DataFormatError(path, lineNo + 1, "invalid UTF-8"), "");
  }
  const lineStart = at === 0 ? 0 : bytes.lastIndexOf(NEWLINE, at - 1) + 1;
  let bad = lineNo + 1;
  for (let i = 0; i < lineStart; i++) if (bytes[i] === NEWLINE) bad++;
  let prefix = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes.subarray(0, lineStart));
  if (lineNo === 0 && prefix.charCodeAt(0) === BOM) prefix = prefix.slice(1);
  const hex = bytes[at].toString(16).padStart(2, "0");
  return new InvalidUtf8(
    new DataFormatError(
      path,
      bad,
      `invalid UTF-8 (byte 0x${hex} at byte ${at - lineStart + 1} of the line; the file must ` +
        `be UTF-8 text)`,
    ),
    prefix,
  );
}

/**
 * The offset of the first byte of `bytes` that does not start a well-formed UTF-8 sequence
 * (Unicode's Table 3-7: no overlong forms, surrogates or code points beyond U+10FFFF), or -1
 * when all of it is well-formed. A sequence cut short by the end of `bytes` is ill-formed.
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const c = bytes[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number, lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + need >= n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k <= need; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * Decodes a whole file's bytes as UTF-8, strictly: a byte order mark at the start is dropped,
 * and invalid UTF-8 is a {@link DataFormatError} `FILE:LINE: invalid UTF-8 ...` (`name` stands for
 * the file) instead of silent U+FFFD replacement characters.
 *
 * @example
 * ```ts
 * import { decodeUtf8 } from "./lines.ts";
 * const text = decodeUtf8(await Deno.readFile("tokenizer.json"), "tokenizer.json");
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, name: string): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalidUtf8(name, bytes, 0).error;
  }
  return text.charCodeAt(0) === BOM ? text.slice(1) : text;
}

/**
 * Reads a whole UTF-8 text file, strictly (see {@link decodeUtf8}): unlike `Deno.readTextFile`,
 * which replaces invalid bytes by U+FFFD, invalid UTF-8 is an error naming the file and line.
 *
 * @example
 * ```ts
 * import { readTextFileStrict } from "./lines.ts";
 * const config = JSON.parse(await readTextFileStrict("config.json"));
 * ```
 */
export async function readTextFileStrict(path: string): Promise<string> {
  return decodeUtf8(await Deno.readFile(path), path);
}

/**
 * Reads and parses a JSON file strictly ({@link readTextFileStrict}); `null` when `optional` and
 * the file does not exist. An unreadable file or invalid JSON is a {@link DataFormatError}
 * naming the file.
 *
 * @example
 * ```ts
 * const config = await readJsonFile("sentence_bert_config.json", { optional: true });
 * ```
 */
export async function readJsonFile(
  path: string,
  opts: { optional?: boolean } = {},
): Promise<unknown> {
  let text: string;
  try {
    text = await readTextFileStrict(path);
  } catch (e) {
    if (e instanceof DataFormatError) throw e; // invalid UTF-8, at its line
    if (opts.optional && e instanceof Deno.errors.NotFound) return null;
    throw new DataFormatError(path, 0, `cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(path, 0, `not valid JSON (${(e as Error).message})`);
  }
}

/** Splits in-memory text into numbered lines, with the same rules as {@link readLines}. */
export function* splitLines(text: string): Generator<Line> {
  let start = 0;
  let lineNo = 0;
  while (start < text.length) {
    let nl = text.indexOf("\n", start);
    if (nl < 0) nl = text.length;
    const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    yield { text: text.slice(start, end), lineNo: ++lineNo };
    start = nl + 1;
  }
}

/** Splits a line on runs of ASCII whitespace (as C's `isspace` does), dropping empty fields. */
export function whitespaceFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && isSpace(line.charCodeAt(i))) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !isSpace(line.charCodeAt(i))) i++;
    out.push(line.slice(start, i));
  }
  return out;
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY = /^([+-]?)inf(?:inity)?$/i;
const NOT_A_NUMBER = /^[+-]?nan(?:\([0-9A-Za-z_]*\))?$/i;
const HEX = /^([+-]?)0x([0-9a-f]*)(?:\.([0-9a-f]*))?(?:p([+-]?\d+))?$/i;

/**
 * Parses a whole field as C's `strtod` reads a number (trec_eval reads scores with `atof`):
 * decimal notation with an optional exponent, `inf`/`infinity` and `nan` in any letter case with
 * an optional sign, and hexadecimal (`0x1.8p3`). Unlike `atof`, trailing characters are not
 * ignored: `'1.5x'` is not a number. Returns `undefined` for text that is not a number and NaN
 * only for a `nan` literal, so that callers can reject the two differently.
 *
 * @example
 * ```ts
 * import { parseCNumber } from "./lines.ts";
 * parseCNumber("-INF"); // -Infinity
 * parseCNumber("1.5e3"); // 1500
 * parseCNumber("high"); // undefined
 * ```
 */
export function parseCNumber(text: string): number | undefined {
  if (DECIMAL.test(text)) return Number(text);
  const inf = INFINITY.exec(text);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  if (NOT_A_NUMBER.test(text)) return NaN;
  const hex = HEX.exec(text);
  if (hex && (hex[2] !== "" || (hex[3] ?? "") !== "")) {
    const frac = hex[3] ?? "";
    const mantissa = Number(BigInt(`0x${hex[2]}${frac}`));
    const exponent = Number(hex[4] ?? 0) - 4 * frac.length;
    // Two steps, so that neither power of two overflows while the product is still finite.
    const half = Math.trunc(exponent / 2);
    const value = mantissa === 0 ? 0 : mantissa * 2 ** half * 2 ** (exponent - half);
    return hex[1] === "-" ? -value : value;
  }
  return undefined;
}

const INTEGER = /^[+-]?\d+(?:\.0*)?$/;

/**
 * Parses a whole field as an integer grade: optional sign, decimal digits, and an optional
 * all-zero fraction (`1.0`, which C's `atol` reads as 1 too). Anything else, including
 * exponents and hexadecimal, is `undefined`, so a value is never read differently than
 * trec_eval would read it.
 *
 * @example
 * ```ts
 * import { parseIntegerField } from "./lines.ts";
 * parseIntegerField("-1"); // -1
 * parseIntegerField("0x1"); // undefined
 * ```
 */
export function parseIntegerField(text: string): number | undefined {
  if (!INTEGER.test(text)) return undefined;
  const v = Number(text);
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * The id that a numeric JSON id (`{"_id": 42}`) stands for, as decimal text. JSON numbers are
 * read as doubles, so an integer beyond 2^53 - 1 has already lost digits
 * (`12345678901234567890` reads as `12345678901234567000`) and a fraction would print
 * differently than Python's `str` prints it (`1.0` vs `1`): anything but a safe integer is a
 * {@link DataFormatError} at the line, telling to quote the id. `name` is the field, as the
 * message shows it.
 *
 * @example
 * ```ts
 * import { numericJsonId } from "./lines.ts";
 * numericJsonId("corpus.jsonl", 3, "_id", 42); // "42"
 * ```
 */
export function numericJsonId(file: string, lineNo: number, name: string, v: number): string {
  if (Number.isSafeInteger(v)) return String(v);
  const why = Number.isInteger(v)
    ? `beyond 2^53 - 1, where JSON numbers lose digits (it reads as ${String(v)})`
    : `not an integer (${String(v)})`;
  throw new DataFormatError(
    file,
    lineNo,
    `numeric "${name}" is ${why}: write the id as a JSON string, e.g. "${name}": "..."`,
  );
}

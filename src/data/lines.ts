/**
 * Streaming line reading for big text files (runs, collections), without loading the whole
 * file into one string.
 *
 * @module
 */

/** One line of a file, without its terminator (`\n` or `\r\n`), and its 1-based number. */
export interface Line {
  /** The text of the line. */
  text: string;
  /** 1-based line number. */
  lineNo: number;
}

/**
 * Yields the lines of a UTF-8 text file one at a time, in order. A final line without a
 * terminator is yielded too; an empty file yields nothing.
 *
 * @example
 * ```ts
 * import { readLines } from "./lines.ts";
 * for await (const { text, lineNo } of readLines("qrels.txt")) console.log(lineNo, text);
 * ```
 */
export async function* readLines(path: string): AsyncGenerator<Line> {
  const file = await Deno.open(path, { read: true });
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let rest = "";
  let lineNo = 0;
  try {
    const buf = new Uint8Array(1 << 20);
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      const chunk = rest + decoder.decode(buf.subarray(0, n), { stream: true });
      let start = 0;
      while (true) {
        const nl = chunk.indexOf("\n", start);
        if (nl < 0) break;
        const end = nl > start && chunk.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        yield { text: chunk.slice(start, end), lineNo: ++lineNo };
        start = nl + 1;
      }
      rest = chunk.slice(start);
    }
    rest += decoder.decode();
    if (rest.length > 0) {
      yield { text: rest.endsWith("\r") ? rest.slice(0, -1) : rest, lineNo: ++lineNo };
    }
  } finally {
    file.close();
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

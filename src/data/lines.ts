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

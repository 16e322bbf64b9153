/**
 * Reading qrels whatever their format: TREC (`qid iter docno rel`, whitespace-separated) or
 * BEIR TSV (`query-id corpus-id score` header, three tab-separated columns).
 *
 * The format is decided once per file, by its first non-blank, non-comment line: the BEIR
 * header, or (headerless BEIR) exactly three tab-separated fields none of which holds
 * whitespace, mean BEIR; anything else is TREC, read as trec_eval reads it. Every later line
 * must then fit that format, so a file that mixes the two is an error at the first line that
 * does not fit, naming the line that decided. A line such as `301\t0 DOC\t1` (three fields by
 * tabs, four by whitespace) is never taken for BEIR: BEIR ids cannot hold whitespace (they
 * could never match a run's document ids), and the TREC reader refuses such mixed separators.
 *
 * @module
 */

import { parseBeirQrels, readBeirQrels } from "./beir.ts";
import { type Line, readLines, splitLines, whitespaceFields } from "./lines.ts";
import { parseTrecQrels, readTrecQrels } from "./trec.ts";
import type { Qrels } from "./types.ts";

/** A qrels file format, as {@link detectQrelsFormat} decides it. */
export interface QrelsFormat {
  /** The format. */
  format: "beir" | "trec";
  /** The 1-based line that decided it (0 for an empty file). */
  lineNo: number;
  /** Why, in words, for error messages. */
  reason: string;
}

function isContent(text: string): boolean {
  const t = text.trim();
  return t !== "" && !t.startsWith("#");
}

/** Decides the format of a qrels file from its first content line (see the module doc). */
export function detectQrelsFormat(first: Line | undefined): QrelsFormat {
  if (first === undefined) return { format: "trec", lineNo: 0, reason: "empty file" };
  const { text, lineNo } = first;
  if (text.trimStart().startsWith("query-id")) {
    return { format: "beir", lineNo, reason: `BEIR header on line ${lineNo}` };
  }
  const tabs = text.split("\t").map((s) => s.trim());
  if (tabs.length === 3 && tabs.every((s) => s !== "") && whitespaceFields(text).length === 3) {
    return {
      format: "beir",
      lineNo,
      reason: `line ${lineNo} has 3 tab-separated fields (headerless BEIR TSV)`,
    };
  }
  return { format: "trec", lineNo, reason: `line ${lineNo} is not BEIR TSV` };
}

function context(f: QrelsFormat): string {
  return ` (the file is read as ${f.format === "beir" ? "BEIR TSV" : "TREC"} qrels: ${f.reason})`;
}

/**
 * Reads a qrels file in TREC or BEIR format, decided once for the whole file by its first
 * non-blank, non-comment line (see the module doc); a line that does not fit the decided format
 * is a `file:line:` error.
 *
 * @example
 * ```ts
 * import { readQrels } from "./qrels.ts";
 * const qrels = await readQrels("scifact/qrels/test.tsv");
 * ```
 */
export async function readQrels(path: string): Promise<Qrels> {
  let first: Line | undefined;
  for await (const line of readLines(path)) {
    if (!isContent(line.text)) continue;
    first = line;
    break;
  }
  const f = detectQrelsFormat(first);
  return f.format === "beir" ? readBeirQrels(path, context(f)) : readTrecQrels(path, context(f));
}

/** In-memory counterpart of {@link readQrels}. */
export function parseQrels(text: string, name = "<qrels>"): Qrels {
  let first: Line | undefined;
  for (const line of splitLines(text)) {
    if (!isContent(line.text)) continue;
    first = line;
    break;
  }
  const f = detectQrelsFormat(first);
  return f.format === "beir"
    ? parseBeirQrels(text, name, context(f))
    : parseTrecQrels(text, name, context(f));
}

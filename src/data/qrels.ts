/**
 * Reading qrels whatever their format: TREC (`qid iter docno rel`) or BEIR TSV
 * (`query-id corpus-id score` header, three tab-separated columns).
 *
 * @module
 */

import { parseBeirQrels, readBeirQrels } from "./beir.ts";
import { readLines } from "./lines.ts";
import { parseTrecQrels, readTrecQrels } from "./trec.ts";
import type { Qrels } from "./types.ts";

/** Which qrels format a first content line belongs to. */
function detect(firstLine: string | undefined): "beir" | "trec" {
  if (firstLine === undefined) return "trec";
  if (firstLine.startsWith("query-id")) return "beir";
  return firstLine.split("\t").length === 3 ? "beir" : "trec";
}

/**
 * Reads a qrels file in TREC or BEIR format, decided by its first non-blank, non-comment line
 * (a `query-id` header or three tab-separated fields mean BEIR).
 *
 * @example
 * ```ts
 * import { readQrels } from "./qrels.ts";
 * const qrels = await readQrels("scifact/qrels/test.tsv");
 * ```
 */
export async function readQrels(path: string): Promise<Qrels> {
  let first: string | undefined;
  for await (const { text } of readLines(path)) {
    if (text.trim() === "" || text.trimStart().startsWith("#")) continue;
    first = text;
    break;
  }
  return detect(first) === "beir" ? readBeirQrels(path) : readTrecQrels(path);
}

/** In-memory counterpart of {@link readQrels}. */
export function parseQrels(text: string, name = "<qrels>"): Qrels {
  const first = text.split("\n").find((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  return detect(first) === "beir" ? parseBeirQrels(text, name) : parseTrecQrels(text, name);
}

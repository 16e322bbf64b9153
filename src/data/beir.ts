/**
 * BEIR datasets: `corpus.jsonl` (`{"_id", "title", "text"}`), `queries.jsonl`
 * (`{"_id", "text"}`) and `qrels/<split>.tsv` (header `query-id corpus-id score`, then
 * tab-separated lines). Readers stream and report errors with file and line.
 *
 * @module
 */

import {
  type Line,
  numericJsonId,
  parseIntegerField,
  readLines,
  splitLines,
  whitespaceFields,
} from "./lines.ts";
import { DataFormatError, type Doc, type Qrels } from "./types.ts";

function parseJsonLine(file: string, { text, lineNo }: Line): Record<string, unknown> | null {
  if (text.trim() === "") return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(file, lineNo, `invalid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new DataFormatError(file, lineNo, "expected a JSON object");
  }
  return v as Record<string, unknown>;
}

function idOf(file: string, lineNo: number, o: Record<string, unknown>): string {
  const key = o._id !== undefined && o._id !== null ? "_id" : "id";
  const id = o[key];
  if (typeof id === "string" && id !== "") return id;
  if (typeof id === "number") return numericJsonId(file, lineNo, key, id);
  throw new DataFormatError(file, lineNo, `missing or empty "_id"`);
}

function stringField(
  file: string,
  lineNo: number,
  o: Record<string, unknown>,
  key: string,
  required: boolean,
): string {
  const v = o[key];
  if (typeof v === "string") return v;
  if (v === undefined || v === null) {
    if (!required) return "";
    throw new DataFormatError(file, lineNo, `missing "${key}"`);
  }
  throw new DataFormatError(file, lineNo, `"${key}" is not a string`);
}

/**
 * Streams the documents of a BEIR `corpus.jsonl` (`_id` or `id`; `title` optional).
 * Duplicate ids are an error.
 *
 * @example
 * ```ts
 * import { iterBeirCorpus } from "./beir.ts";
 * for await (const doc of iterBeirCorpus("scifact/corpus.jsonl")) console.log(doc.id);
 * ```
 */
export async function* iterBeirCorpus(path: string): AsyncGenerator<Doc> {
  const seen = new Map<string, number>();
  for await (const line of readLines(path)) {
    const o = parseJsonLine(path, line);
    if (o === null) continue;
    const id = idOf(path, line.lineNo, o);
    const prev = seen.get(id);
    if (prev !== undefined) {
      throw new DataFormatError(path, line.lineNo, `duplicate _id '${id}' (first on line ${prev})`);
    }
    seen.set(id, line.lineNo);
    yield {
      id,
      title: stringField(path, line.lineNo, o, "title", false),
      text: stringField(path, line.lineNo, o, "text", true),
    };
  }
}

/** Reads a whole BEIR corpus into an array, in file order. */
export async function readBeirCorpus(path: string): Promise<Doc[]> {
  const docs: Doc[] = [];
  for await (const d of iterBeirCorpus(path)) docs.push(d);
  return docs;
}

/** Reads BEIR `queries.jsonl` into a map id -> text. Duplicate ids are an error. */
export async function readBeirQueries(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const lines = new Map<string, number>();
  for await (const line of readLines(path)) {
    const o = parseJsonLine(path, line);
    if (o === null) continue;
    const id = idOf(path, line.lineNo, o);
    const prev = lines.get(id);
    if (prev !== undefined) {
      throw new DataFormatError(path, line.lineNo, `duplicate _id '${id}' (first on line ${prev})`);
    }
    lines.set(id, line.lineNo);
    out.set(id, stringField(path, line.lineNo, o, "text", true));
  }
  return out;
}

const BEIR_HEADER = ["query-id", "corpus-id", "score"];

/** Accumulates BEIR qrels lines (shared by the file and in-memory readers). */
function beirQrelsBuilder(file: string, context: string) {
  const qrels: Qrels = new Map();
  const first = new Map<string, number>();
  let sawContent = false;
  return {
    qrels,
    add({ text, lineNo }: Line): void {
      const t = text.trim();
      if (t === "" || t.startsWith("#")) return;
      const f = text.split("\t").map((s) => s.trim());
      if (!sawContent) {
        sawContent = true;
        if (f.join(" ") === BEIR_HEADER.join(" ")) return;
        if (f[0] === "query-id") {
          throw new DataFormatError(
            file,
            lineNo,
            `bad header '${f.join("\\t")}', expected '${BEIR_HEADER.join("\\t")}'`,
          );
        }
      }
      if (f.length !== 3) {
        const trec = whitespaceFields(text).length === 4 ? "; this line looks like TREC qrels" : "";
        throw new DataFormatError(
          file,
          lineNo,
          `expected 3 tab-separated fields (query-id corpus-id score), found ${f.length}` +
            context + trec,
        );
      }
      const [qid, docid, scoreText] = f;
      if (qid === "" || docid === "") throw new DataFormatError(file, lineNo, "empty id");
      for (const [name, v] of [["query-id", qid], ["corpus-id", docid], ["score", scoreText]]) {
        if (whitespaceFields(v).length > 1) {
          throw new DataFormatError(
            file,
            lineNo,
            `${name} '${v}' contains whitespace, which no run's ids can match (a TREC qrels ` +
              `line, qid iter docno rel, in a BEIR file?)` + context,
          );
        }
      }
      const score = parseIntegerField(scoreText);
      if (score === undefined) {
        throw new DataFormatError(file, lineNo, `score '${scoreText}' is not an integer`);
      }
      let q = qrels.get(qid);
      if (q === undefined) qrels.set(qid, q = new Map());
      const key = `${qid}\t${docid}`;
      const prev = first.get(key);
      if (prev !== undefined) {
        throw new DataFormatError(
          file,
          lineNo,
          `duplicate judgement of document '${docid}' for query '${qid}' (first on line ${prev})`,
        );
      }
      first.set(key, lineNo);
      q.set(docid, score);
    },
  };
}

/**
 * Reads a BEIR qrels TSV (`query-id corpus-id score` header, then tab-separated lines; blank
 * lines and `#` comments skipped, as in TREC files). Ids must not contain whitespace (no run could name such a document); `context` is appended to
 * the errors that a file in another format would raise.
 */
export async function readBeirQrels(path: string, context = ""): Promise<Qrels> {
  const b = beirQrelsBuilder(path, context);
  for await (const line of readLines(path)) b.add(line);
  return b.qrels;
}

/** Parses BEIR qrels TSV text held in memory; `name` stands for the file in messages. */
export function parseBeirQrels(text: string, name = "<qrels>", context = ""): Qrels {
  const b = beirQrelsBuilder(name, context);
  for (const line of splitLines(text)) b.add(line);
  return b.qrels;
}

/** One split of a BEIR dataset, loaded. */
export interface BeirSplit {
  /** All documents, in file order. */
  corpus: Doc[];
  /** The queries judged in this split (id -> text), in qrels order. */
  queries: Map<string, string>;
  /** The split's judgements. */
  qrels: Qrels;
}

/**
 * The judged queries of one split of a BEIR dataset directory: the split's qrels and those
 * queries of `queries.jsonl` that they judge (a judged query missing from `queries.jsonl` is an
 * error), without reading the corpus.
 */
export async function loadBeirQueries(
  dir: string,
  split: string,
): Promise<Omit<BeirSplit, "corpus">> {
  const qrelsPath = `${dir}/qrels/${split}.tsv`;
  try {
    await Deno.stat(qrelsPath);
  } catch {
    throw new DataFormatError(qrelsPath, 0, `no qrels for split '${split}'`);
  }
  const qrels = await readBeirQrels(qrelsPath);
  const allQueries = await readBeirQueries(`${dir}/queries.jsonl`);
  const queries = new Map<string, string>();
  for (const qid of qrels.keys()) {
    const t = allQueries.get(qid);
    if (t === undefined) {
      throw new DataFormatError(
        `${dir}/queries.jsonl`,
        0,
        `query '${qid}' of ${qrelsPath} missing`,
      );
    }
    queries.set(qid, t);
  }
  return { queries, qrels };
}

/**
 * Loads a BEIR dataset directory for one split: the corpus, the split's qrels, and those
 * queries of `queries.jsonl` that the qrels judge ({@link loadBeirQueries}).
 */
export async function loadBeir(dir: string, split: string): Promise<BeirSplit> {
  const judged = await loadBeirQueries(dir, split);
  return { corpus: await readBeirCorpus(`${dir}/corpus.jsonl`), ...judged };
}

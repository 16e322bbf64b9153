/**
 * MS MARCO passage-ranking TSV files: `collection.tsv` (`pid<TAB>passage`), `queries.*.tsv`
 * (`qid<TAB>query`), `qrels.*.tsv` (`qid 0 pid rel`, TREC qrels with tabs), triples
 * (`query<TAB>positive<TAB>negative` as text, or `qid<TAB>pid+<TAB>pid-` as ids) and runs
 * (`qid<TAB>pid<TAB>rank`, the format of the official evaluation script).
 *
 * @module
 */

import { type Line, readLines, whitespaceFields } from "./lines.ts";
import { readTrecQrels } from "./trec.ts";
import { DataFormatError, type Qrels, type Run } from "./types.ts";

function tabFields(file: string, { text, lineNo }: Line, n: number, what: string): string[] {
  const f = text.split("\t");
  if (f.length !== n) {
    throw new DataFormatError(
      file,
      lineNo,
      `expected ${n} tab-separated fields (${what}), found ${f.length}`,
    );
  }
  return f;
}

/**
 * An id field, trimmed; empty or holding whitespace inside is an error (qrels and runs split on
 * whitespace, so such an id could never be judged or retrieved).
 */
function idField(file: string, lineNo: number, what: string, raw: string): string {
  const id = raw.trim();
  if (id === "") throw new DataFormatError(file, lineNo, `empty ${what}`);
  if (whitespaceFields(id).length > 1) {
    throw new DataFormatError(file, lineNo, `${what} '${id}' contains whitespace`);
  }
  return id;
}

/**
 * Streams `(id, text)` pairs of a two-column TSV (collection or queries). An id that is empty
 * or holds whitespace is an error.
 */
export async function* iterMsMarcoTsv(
  path: string,
): AsyncGenerator<{ id: string; text: string; lineNo: number }> {
  for await (const line of readLines(path)) {
    if (line.text === "") continue;
    const [id, text] = tabFields(path, line, 2, "id text");
    yield { id: idField(path, line.lineNo, "id", id), text, lineNo: line.lineNo };
  }
}

async function readIdText(path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const lines = new Map<string, number>();
  for await (const { id, text, lineNo } of iterMsMarcoTsv(path)) {
    const prev = lines.get(id);
    if (prev !== undefined) {
      throw new DataFormatError(path, lineNo, `duplicate id '${id}' (first on line ${prev})`);
    }
    lines.set(id, lineNo);
    out.set(id, text);
  }
  return out;
}

/** Reads `collection.tsv` (pid -> passage). For the full 8.8M passages prefer iterMsMarcoTsv. */
export function readMsMarcoCollection(path: string): Promise<Map<string, string>> {
  return readIdText(path);
}

/** Reads a queries TSV (qid -> query text). */
export function readMsMarcoQueries(path: string): Promise<Map<string, string>> {
  return readIdText(path);
}

/** Reads an MS MARCO qrels TSV (`qid 0 pid rel`; any whitespace separates, as TREC qrels). */
export function readMsMarcoQrels(path: string): Promise<Qrels> {
  return readTrecQrels(path);
}

/** Streams triples: each line's three tab-separated fields (texts or ids, as the file holds). */
export async function* iterMsMarcoTriples(
  path: string,
): AsyncGenerator<[query: string, positive: string, negative: string]> {
  for await (const { triple } of iterMsMarcoTripleLines(path)) yield triple;
}

/**
 * Streams triples as {@link iterMsMarcoTriples} does, each with the 1-based line of the file it
 * is on (blank lines are skipped, so the n-th triple need not be on line n), for errors that
 * name the line.
 */
export async function* iterMsMarcoTripleLines(
  path: string,
): AsyncGenerator<{ triple: [query: string, positive: string, negative: string]; lineNo: number }> {
  for await (const line of readLines(path)) {
    if (line.text === "") continue;
    const [q, p, n] = tabFields(path, line, 3, "query positive negative");
    yield { triple: [q, p, n], lineNo: line.lineNo };
  }
}

/**
 * Reads a run in the official MS MARCO format (`qid<TAB>pid<TAB>rank`, rank from 1). The
 * score of each passage is `-rank`, so trec_eval order is rank order. A passage ranked twice
 * for a query, or a rank used twice, is an error (the official script rejects the former), and
 * so are gaps: each query's ranks must be 1..n, so that positions equal the rank column the
 * official script indexes by (with a gap, its MRR@10 would differ from a position-based one).
 */
export async function readMsMarcoRun(path: string): Promise<Run> {
  const acc = new Map<string, { docIds: string[]; scores: number[]; pids: Set<string> }>();
  const ranksSeen = new Map<string, Set<number>>();
  for await (const line of readLines(path)) {
    if (line.text.trim() === "") continue;
    const f = tabFields(path, line, 3, "qid pid rank");
    const qid = idField(path, line.lineNo, "qid", f[0]);
    const pid = idField(path, line.lineNo, "pid", f[1]);
    const rankText = f[2].trim();
    const rank = /^\+?\d+$/.test(rankText) ? Number(rankText) : NaN;
    if (!Number.isSafeInteger(rank) || rank < 1) {
      throw new DataFormatError(path, line.lineNo, `rank '${rankText}' is not a positive integer`);
    }
    let a = acc.get(qid);
    if (a === undefined) {
      acc.set(qid, a = { docIds: [], scores: [], pids: new Set() });
      ranksSeen.set(qid, new Set());
    }
    if (a.pids.has(pid)) {
      throw new DataFormatError(
        path,
        line.lineNo,
        `passage '${pid}' ranked twice for query '${qid}'`,
      );
    }
    const rs = ranksSeen.get(qid)!;
    if (rs.has(rank)) {
      throw new DataFormatError(path, line.lineNo, `rank ${rank} used twice for query '${qid}'`);
    }
    rs.add(rank);
    a.pids.add(pid);
    a.docIds.push(pid);
    a.scores.push(-rank);
  }
  for (const [qid, rs] of ranksSeen) {
    const sorted = [...rs].sort((x, y) => x - y);
    const gap = sorted.findIndex((r, i) => r !== i + 1);
    if (gap >= 0) {
      throw new DataFormatError(
        path,
        0,
        `ranks of query '${qid}' are not 1..${sorted.length}: rank ${gap + 1} is missing`,
      );
    }
  }
  const run: Run = new Map();
  for (const [qid, a] of acc) {
    run.set(qid, { docIds: a.docIds, scores: Float64Array.from(a.scores) });
  }
  return run;
}

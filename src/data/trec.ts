/**
 * TREC qrels and run files: readers (streaming, with errors that name file and line) and
 * writers.
 *
 * Qrels lines are `qid iter docno rel` (exactly four whitespace-separated fields, `rel` an
 * integer). Run lines are `qid Q0 docno rank score run_id` (six fields; further fields are
 * ignored, as trec_eval does). Blank lines and lines starting with `#` are skipped (trec_eval
 * 10.0). A document listed twice for one query is an error in both, as in trec_eval.
 *
 * Scores are read as C's `strtod` reads them (trec_eval uses `atof`): `inf`, `-Infinity`,
 * `1e-3`, `0x1p3` are numbers; a `nan` score is an error, since NaN has no place in a ranking
 * (trec_eval would sort it arbitrarily).
 *
 * A line whose leading columns (qid Q0 docno rank score of a run, qid iter docno of qrels) are
 * separated partly by tabs and partly by other whitespace (`1\tQ0\tdoc 7\t...`, or the qrels
 * line `301\t0 DOC\t1`, which is BEIR-shaped by its tabs and TREC-shaped by its whitespace) is
 * an error rather than a guess at the columns: tabs say one thing, whitespace (trec_eval's
 * reading) another. Whitespace of any kind before the first field, after the last one, or
 * after the leading columns (`q1 Q0 d1 1 2.5 sys\t`, `q1 0 d1 1\t`) is unambiguous and fine.
 *
 * @module
 */

import {
  type Line,
  parseCNumber,
  parseIntegerField,
  readLines,
  splitLines,
  whitespaceFields,
} from "./lines.ts";
import { compareCodePoints, trecOrder } from "./order.ts";
import { DataFormatError, type Qrels, type Run } from "./types.ts";
import { writeTextFileAtomic } from "../util/fs.ts";

/** Accumulates qrels lines; shared by the file and the in-memory readers. */
class QrelsBuilder {
  readonly qrels: Qrels = new Map();
  private readonly firstLine = new Map<string, Map<string, number>>();
  constructor(private readonly file: string, private readonly context = "") {}

  add({ text, lineNo }: Line): void {
    const f = whitespaceFields(text);
    if (f.length === 0 || f[0].startsWith("#")) return;
    if (text.indexOf("\t") >= 0) checkSeparators(this.file, lineNo, text, QRELS_COLUMNS);
    if (f.length !== 4) {
      const hint = f.length === 3 && tabFieldCount(text) === 3
        ? "; this line looks like BEIR TSV (query-id corpus-id score)"
        : "";
      throw new DataFormatError(
        this.file,
        lineNo,
        `expected 4 whitespace-separated fields (qid iter docno rel), found ${f.length}` +
          this.context + hint,
      );
    }
    const [qid, , docno, relText] = f;
    const rel = parseIntegerField(relText);
    if (rel === undefined) {
      throw new DataFormatError(this.file, lineNo, `relevance '${relText}' is not an integer`);
    }
    let q = this.qrels.get(qid);
    let lines = this.firstLine.get(qid);
    if (q === undefined || lines === undefined) {
      q = new Map();
      lines = new Map();
      this.qrels.set(qid, q);
      this.firstLine.set(qid, lines);
    }
    const prev = lines.get(docno);
    if (prev !== undefined) {
      throw new DataFormatError(
        this.file,
        lineNo,
        `duplicate judgement of document '${docno}' for query '${qid}' (first on line ${prev})`,
      );
    }
    lines.set(docno, lineNo);
    q.set(docno, rel);
  }
}

/** Per-query growable arrays; turned into a {@link Run} at the end. */
interface RunAcc {
  docIds: string[];
  scores: number[];
  lineNos: number[];
}

/** Accumulates run lines; shared by the file and the in-memory readers. */
class RunBuilder {
  private readonly acc = new Map<string, RunAcc>();
  private last: RunAcc | undefined;
  private lastQid = "";
  /** The run_id of the last line (trec_eval keeps the last one). */
  runId = "";
  constructor(private readonly file: string) {}

  add({ text, lineNo }: Line): void {
    // Hand-rolled field scan (no intermediate array): this is the hot loop for big runs.
    const n = text.length;
    let i = 0;
    const starts = [0, 0, 0, 0, 0, 0];
    const ends = [0, 0, 0, 0, 0, 0];
    let count = 0;
    while (count < 6) {
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (i >= n) break;
      starts[count] = i;
      while (i < n && !isSpace(text.charCodeAt(i))) i++;
      ends[count++] = i;
    }
    if (count === 0 || text.charCodeAt(starts[0]) === 35 /* # */) return;
    if (count < 6) {
      throw new DataFormatError(
        this.file,
        lineNo,
        `expected 6 whitespace-separated fields (qid Q0 docno rank score run_id), found ${count}`,
      );
    }
    if (text.indexOf("\t") >= 0) checkSeparators(this.file, lineNo, text, RUN_COLUMNS);
    const qid = text.slice(starts[0], ends[0]);
    const scoreText = text.slice(starts[4], ends[4]);
    const score = parseCNumber(scoreText);
    if (score === undefined) {
      throw new DataFormatError(this.file, lineNo, `score '${scoreText}' is not a number`);
    }
    if (Number.isNaN(score)) {
      throw new DataFormatError(
        this.file,
        lineNo,
        `score '${scoreText}' is NaN, which cannot be ranked (trec_eval would order it ` +
          `arbitrarily)`,
      );
    }
    this.runId = text.slice(starts[5], ends[5]);
    let a = this.last;
    if (a === undefined || qid !== this.lastQid) {
      a = this.acc.get(qid);
      if (a === undefined) {
        a = { docIds: [], scores: [], lineNos: [] };
        this.acc.set(qid, a);
      }
      this.last = a;
      this.lastQid = qid;
    }
    a.docIds.push(text.slice(starts[2], ends[2]));
    a.scores.push(score);
    a.lineNos.push(lineNo);
  }

  finish(): Run {
    const run: Run = new Map();
    for (const [qid, a] of this.acc) {
      const seen = new Set(a.docIds);
      if (seen.size !== a.docIds.length) this.reportDuplicate(qid, a);
      run.set(qid, { docIds: a.docIds, scores: Float64Array.from(a.scores) });
    }
    return run;
  }

  /** Finds the first repeated document of a query and throws with both line numbers. */
  private reportDuplicate(qid: string, a: RunAcc): never {
    const first = new Map<string, number>();
    let bad = -1;
    for (let i = 0; i < a.docIds.length; i++) {
      const prev = first.get(a.docIds[i]);
      if (prev === undefined) first.set(a.docIds[i], a.lineNos[i]);
      else if (bad < 0 || a.lineNos[i] < a.lineNos[bad]) {
        bad = i;
      }
    }
    const doc = a.docIds[bad];
    throw new DataFormatError(
      this.file,
      a.lineNos[bad],
      `duplicate document '${doc}' for query '${qid}' (first on line ${first.get(doc)})`,
    );
  }
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

const QRELS_COLUMNS = ["qid", "iter", "docno"];
const RUN_COLUMNS = ["qid", "Q0", "docno", "rank", "score"];

/**
 * Rejects a line (one that contains a tab) whose separators between the `columns` (its leading
 * fields) are tabs in some places and other whitespace in others: split by tabs and split by
 * whitespace, its columns would differ. Whitespace before the first field and after the last
 * of `columns` is not looked at.
 */
function checkSeparators(file: string, lineNo: number, text: string, columns: string[]): void {
  const n = text.length;
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  let tabs = 0, others = 0;
  for (let gap = 0; gap < columns.length - 1; gap++) {
    while (i < n && !isSpace(text.charCodeAt(i))) i++;
    let tab = false;
    for (let c = text.charCodeAt(i); i < n && isSpace(c); c = text.charCodeAt(++i)) {
      if (c === 9) tab = true;
    }
    if (i >= n) break; // no next field: the gap is trailing whitespace
    if (tab) tabs++;
    else others++;
  }
  if (tabs === 0 || others === 0) return;
  const f = text.trim().split("\t").map((s) => s.trim());
  const bad = f.findIndex((field) => whitespaceFields(field).length > 1);
  throw new DataFormatError(
    file,
    lineNo,
    `line mixes tab and space separators: tab-separated field ${bad + 1} '${f[bad]}' holds ` +
      `whitespace, so its columns differ split by tabs and by whitespace (the ${
        columns.join(" ")
      } columns must not contain spaces)`,
  );
}

/** Number of non-empty tab-separated fields of a line that contains a tab, else 0. */
function tabFieldCount(text: string): number {
  if (text.indexOf("\t") < 0) return 0;
  return text.split("\t").filter((s) => s.trim() !== "").length;
}

/**
 * Reads a TREC qrels file (`qid iter docno rel`). `context` is appended to field-count
 * errors (the format detection of `qrels.ts` says there why the file is read as TREC).
 *
 * @example
 * ```ts
 * import { readTrecQrels } from "./trec.ts";
 * const qrels = await readTrecQrels("qrels.test");
 * console.log(qrels.get("301")?.get("FBIS3-10082"));
 * ```
 */
export async function readTrecQrels(path: string, context = ""): Promise<Qrels> {
  const b = new QrelsBuilder(path, context);
  for await (const line of readLines(path)) b.add(line);
  return b.qrels;
}

/**
 * Parses TREC qrels text held in memory; `name` stands for the file in error messages, and
 * `context` (like {@link readTrecQrels}'s) is appended to field-count errors.
 */
export function parseTrecQrels(text: string, name = "<qrels>", context = ""): Qrels {
  const b = new QrelsBuilder(name, context);
  for (const line of splitLines(text)) b.add(line);
  return b.qrels;
}

/** A run read from a file, with the run_id of its last line. */
export interface TrecRunFile {
  /** The rankings. */
  run: Run;
  /** run_id column of the last line ("" for an empty file). */
  runId: string;
}

/**
 * Reads a TREC run file (`qid Q0 docno rank score run_id`), streaming. The rank column is
 * ignored; scores are parsed as doubles.
 *
 * @example
 * ```ts
 * import { readTrecRun } from "./trec.ts";
 * const { run } = await readTrecRun("results.test");
 * console.log(run.get("301")?.docIds.length);
 * ```
 */
export async function readTrecRun(path: string): Promise<TrecRunFile> {
  const b = new RunBuilder(path);
  for await (const line of readLines(path)) b.add(line);
  return { run: b.finish(), runId: b.runId };
}

/** Parses TREC run text held in memory; `name` stands for the file in error messages. */
export function parseTrecRun(text: string, name = "<run>"): TrecRunFile {
  const b = new RunBuilder(name);
  for (const line of splitLines(text)) b.add(line);
  return { run: b.finish(), runId: b.runId };
}

/** Options of {@link formatTrecRun} and {@link writeTrecRun}. */
export interface WriteRunOptions {
  /** The run_id column (default "selfmargin"); must not contain whitespace. */
  runId?: string;
  /** Keep at most this many documents per query (default: all). */
  depth?: number;
}

/**
 * Formats a run as TREC run text: queries in code-point order of their ids, documents in
 * trec_eval order with ranks 1, 2, ...; scores printed with full double precision so that
 * reading the file back reproduces the same ranking, ties included.
 */
export function formatTrecRun(run: Run, options: WriteRunOptions = {}): string {
  const runId = options.runId ?? "selfmargin";
  if (/\s/.test(runId) || runId === "") throw new RangeError(`bad run id '${runId}'`);
  const depth = options.depth ?? Infinity;
  const parts: string[] = [];
  for (const qid of sortedKeys(run)) {
    const r = run.get(qid)!;
    const order = trecOrder(r);
    const n = Math.min(order.length, depth);
    for (let i = 0; i < n; i++) {
      const j = order[i];
      parts.push(`${qid} Q0 ${r.docIds[j]} ${i + 1} ${r.scores[j]} ${runId}\n`);
    }
  }
  return parts.join("");
}

/** Writes a run as a TREC run file (see {@link formatTrecRun}). */
export async function writeTrecRun(
  path: string,
  run: Run,
  options: WriteRunOptions = {},
): Promise<void> {
  await writeTextFileAtomic(path, formatTrecRun(run, options));
}

/** Formats qrels as TREC qrels text (`qid 0 docno rel`), queries and documents sorted. */
export function formatTrecQrels(qrels: Qrels): string {
  const parts: string[] = [];
  for (const qid of sortedKeys(qrels)) {
    const q = qrels.get(qid)!;
    for (const docno of sortedKeys(q)) parts.push(`${qid} 0 ${docno} ${q.get(docno)}\n`);
  }
  return parts.join("");
}

/** Writes qrels as a TREC qrels file (see {@link formatTrecQrels}). */
export async function writeTrecQrels(path: string, qrels: Qrels): Promise<void> {
  await writeTextFileAtomic(path, formatTrecQrels(qrels));
}

function sortedKeys(m: Map<string, unknown>): string[] {
  return [...m.keys()].sort(compareCodePoints);
}

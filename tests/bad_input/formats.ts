/**
 * The cases of the bad-input suite (tests/bad_input_test.ts): every line format the project
 * reads as a {@link Format} (a valid seed, readers that return plain values, a well-formedness
 * check for mutants, and malformed cases with what reading them must give), the safetensors
 * cases, and the model-directory cases (config.json, tokenizer.json, weights).
 *
 * @module
 */
import { ok } from "node:assert/strict";
import { readTextsJsonl } from "../../src/cli/texts_jsonl.ts";
import { readBeirCorpus, readBeirQrels, readBeirQueries } from "../../src/data/beir.ts";
import {
  readMsMarcoCollection,
  readMsMarcoQrels,
  readMsMarcoQueries,
  readMsMarcoRun,
} from "../../src/data/msmarco.ts";
import { readQrels } from "../../src/data/qrels.ts";
import { readTrecQrels, readTrecRun } from "../../src/data/trec.ts";
import type { Doc, Qrels, Run } from "../../src/data/types.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { readTeacherScores } from "../../src/losses/margin_mse.ts";
import { loadEncoder } from "../../src/models/load.ts";
import {
  type NamedTensor,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
} from "../../src/models/safetensors.ts";
import { beirTriples, msmarcoTriples } from "../../src/train/data.ts";
import { raw, safetensorsBytes, tinyTokenizerJson } from "./gen.ts";

// ---- expectations ------------------------------------------------------------------------------

/**
 * What reading a case must give: an error whose message contains `FILE:LINE: ` (and matches
 * `match`), an error naming the file that matches `error`, the right value, or any one of
 * several outcomes where more than one answer is right.
 */
export type Expect =
  | { line: number; match?: RegExp }
  | { error: RegExp }
  | { value: unknown }
  | { anyOf: Expect[] };

/** One generated file and what reading it must give. */
export interface Case {
  /** What the case is about, as a behaviour. */
  name: string;
  /** The file's content: text (written as UTF-8) or raw bytes. */
  content: string | Uint8Array;
  /** What reading it must give. */
  expect: Expect;
}

/** A file format: a valid seed, readers returning plain values, cases, a check for mutants. */
export interface Format {
  /** The format's name, as test names show it. */
  name: string;
  /** File name the cases are written under (readers may look at the extension). */
  file: string;
  /** Reader name -> reads the file and returns a plain (deepStrictEqual-able) value. */
  readers: Record<string, (path: string) => Promise<unknown>>;
  /** A valid file, the source of the standard variants and of the mutants. */
  seed: string;
  /** What the readers return for the seed. */
  seedValue: unknown;
  /** The malformed (and the tricky but valid) cases. */
  cases: Case[];
  /** Throws when a value a mutant parsed to is not well-formed. */
  wellFormed: (v: unknown) => void;
}

// ---- plain values and well-formedness ----------------------------------------------------------

function plainRun(run: Run): Record<string, [string, number][]> {
  return Object.fromEntries(
    [...run].map(([q, r]) => [q, r.docIds.map((d, i): [string, number] => [d, r.scores[i]])]),
  );
}

function plainQrels(qrels: Qrels): Record<string, Record<string, number>> {
  return Object.fromEntries([...qrels].map(([q, m]) => [q, Object.fromEntries(m)]));
}

/** A non-empty id; without `spaces`, one without whitespace (TREC ids are split on it). */
function assertId(s: unknown, what: string, spaces = false): void {
  ok(typeof s === "string" && s !== "", `${what} is empty or not a string`);
  if (!spaces) ok(!/\s/.test(s as string), `${what} '${s}' holds whitespace`);
}

function wellFormedRun(run: Record<string, [string, number][]>, spaces = false): void {
  for (const [q, docs] of Object.entries(run)) {
    assertId(q, "query id", spaces);
    ok(new Set(docs.map((d) => d[0])).size === docs.length, `query ${q}: a document twice`);
    for (const [d, s] of docs) {
      assertId(d, "document id", spaces);
      ok(typeof s === "number" && !Number.isNaN(s), `score of ${d} is ${s}`);
    }
  }
}

function wellFormedQrels(v: unknown, spaces = false): void {
  for (const [q, docs] of Object.entries(v as Record<string, Record<string, number>>)) {
    assertId(q, "query id", spaces);
    for (const [d, rel] of Object.entries(docs)) {
      assertId(d, "document id", spaces);
      ok(Number.isSafeInteger(rel), `relevance of (${q}, ${d}) is ${rel}`);
    }
  }
}

function wellFormedIdTexts(v: unknown): void {
  const rows = v as [string, string][];
  ok(Array.isArray(rows));
  ok(new Set(rows.map((r) => r[0])).size === rows.length, "an id twice");
  for (const [id, text] of rows) {
    assertId(id, "id", true);
    ok(typeof text === "string", `text of ${id} is not a string`);
  }
}

// ---- line formats ------------------------------------------------------------------------------

const TREC_RUN: Format = {
  name: "TREC run",
  file: "run.trec",
  readers: {
    readTrecRun: async (p) => {
      const r = await readTrecRun(p);
      return { runId: r.runId, run: plainRun(r.run) };
    },
  },
  seed: "q1 Q0 d1 1 2.5 sys\nq1 Q0 d2 2 1.25 sys\nq2 Q0 d1 1 -0.5 sys\n",
  seedValue: { runId: "sys", run: { q1: [["d1", 2.5], ["d2", 1.25]], q2: [["d1", -0.5]] } },
  wellFormed: (v) => {
    const { runId, run } = v as { runId: string; run: Record<string, [string, number][]> };
    ok(typeof runId === "string");
    wellFormedRun(run);
  },
  cases: [
    {
      name: "tabs alone separate fields",
      content: "q1\tQ0\td1\t1\t2.5\tsys\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "runs of spaces separate fields",
      content: "q1  Q0 d1   1 2.5 sys \n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "a tab after the last field of a space-separated line is whitespace",
      content: "q1 Q0 d1 1 2.5 sys\t\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "tabs mixed with spaces inside the columns: trec_eval's reading or an error",
      content: "q1\tQ0\t d1  1\t2.5   sys\n",
      expect: {
        anyOf: [{ value: { runId: "sys", run: { q1: [["d1", 2.5]] } } }, { line: 1 }],
      },
    },
    {
      name: "a seventh field is ignored, as trec_eval does",
      content: "q1 Q0 d1 1 2.5 sys extra\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "comment lines are skipped",
      content: "# a comment\nq1 Q0 d1 1 2.5 sys\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "the rank column is not read",
      content: "q1 Q0 d1 x 2.5 sys\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", 2.5]] } } },
    },
    {
      name: "five fields (no run_id) is an error at its line",
      content: "q1 Q0 d1 1 2.5 sys\nq1 Q0 d2 2 1.25\n",
      expect: { line: 2, match: /6 whitespace-separated fields/ },
    },
    {
      name: "a truncated last line is an error at its line",
      content: "q1 Q0 d1 1 2.5 sys\nq1 Q0 d2 2 1.",
      expect: { line: 2 },
    },
    {
      name: "a non-numeric score is an error at its line",
      content: "q1 Q0 d1 1 2.5 sys\nq1 Q0 d2 2 abc sys\n",
      expect: { line: 2, match: /score 'abc'/ },
    },
    {
      name: "a NaN score is an error (it has no rank)",
      content: "q1 Q0 d1 1 NaN sys\n",
      expect: { line: 1, match: /NaN/ },
    },
    {
      name: "a score with trailing garbage is an error",
      content: "q1 Q0 d1 1 1.5abc sys\n",
      expect: { line: 1, match: /1\.5abc/ },
    },
    {
      name: "'inf' and '-inf' scores read as trec_eval's strtod reads them",
      content: "q1 Q0 d1 1 inf sys\nq1 Q0 d2 2 -inf sys\nq1 Q0 d3 3 0 sys\n",
      expect: {
        value: { runId: "sys", run: { q1: [["d1", Infinity], ["d2", -Infinity], ["d3", 0]] } },
      },
    },
    {
      name: "'+INF', 'Infinity' and '-infinity' read as infinities (strtod ignores case)",
      content: "q1 Q0 d1 1 +INF sys\nq1 Q0 d2 2 Infinity sys\nq1 Q0 d3 3 -infinity sys\n",
      expect: {
        value: {
          runId: "sys",
          run: { q1: [["d1", Infinity], ["d2", Infinity], ["d3", -Infinity]] },
        },
      },
    },
    {
      name: "a score beyond double range overflows to Infinity, as strtod does",
      content: "q1 Q0 d1 1 1e400 sys\n",
      expect: { value: { runId: "sys", run: { q1: [["d1", Infinity]] } } },
    },
    {
      name: "a document twice for a query names both lines",
      content: "q1 Q0 d1 1 2 s\nq1 Q0 d2 2 1 s\nq1 Q0 d1 3 0 s\n",
      expect: { line: 3, match: /duplicate document 'd1' .*first on line 1/ },
    },
    {
      name: "one document under two queries is fine",
      content: "q1 Q0 d1 1 2 s\nq2 Q0 d1 1 2 s\n",
      expect: { value: { runId: "s", run: { q1: [["d1", 2]], q2: [["d1", 2]] } } },
    },
    {
      name: "an empty file is an empty run",
      content: "",
      expect: { value: { runId: "", run: {} } },
    },
    {
      name: "blank and comment lines only is an empty run",
      content: "\n# nothing\n  \n",
      expect: { value: { runId: "", run: {} } },
    },
    {
      name: "non-UTF-8 bytes are refused at their line, never merged into one U+FFFD id",
      content: raw("q1 Q0 d\xff 1 2 s\nq1 Q0 d\xfe 2 1 s\n"),
      expect: { line: 1 },
    },
  ],
};

const TREC_QRELS_SEED = "q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 2\n";
const TREC_QRELS: Format = {
  name: "TREC qrels",
  file: "qrels.trec",
  readers: {
    readTrecQrels: async (p) => plainQrels(await readTrecQrels(p)),
    readQrels: async (p) => plainQrels(await readQrels(p)),
    readMsMarcoQrels: async (p) => plainQrels(await readMsMarcoQrels(p)),
  },
  seed: TREC_QRELS_SEED,
  seedValue: { q1: { d1: 1, d2: 0 }, q2: { d1: 2 } },
  wellFormed: (v) => wellFormedQrels(v),
  cases: [
    {
      name: "tabs alone or runs of spaces separate fields",
      content: "q1\t0\td1\t1\nq2  0 d1   2 \n",
      expect: { value: { q1: { d1: 1 }, q2: { d1: 2 } } },
    },
    {
      name: "a tab after the last field of a space-separated line is whitespace",
      content: "q1 0 d1 1\t\n",
      expect: { value: { q1: { d1: 1 } } },
    },
    {
      name: "comment lines are skipped",
      content: "# judged by hand\nq1 0 d1 1\n",
      expect: { value: { q1: { d1: 1 } } },
    },
    {
      name: "a 3-field TREC line '301<TAB>0 DOC<TAB>1' is TREC, not BEIR with a spaced doc id",
      content: "301\t0 DOC\t1\n301\t0 DOC2\t0\n",
      expect: { anyOf: [{ value: { "301": { DOC: 1, DOC2: 0 } } }, { line: 1 }] },
    },
    {
      name: "three fields is an error at its line",
      content: "q1 0 d1 1\nq1 0 d2\n",
      expect: { line: 2, match: /4 whitespace-separated fields/ },
    },
    {
      name: "five fields is an error at its line",
      content: "q1 0 d1 1 9\n",
      expect: { line: 1, match: /4 whitespace-separated fields/ },
    },
    {
      name: "a fractional relevance is an error",
      content: "q1 0 d1 1\nq1 0 d2 1.5\n",
      expect: { line: 2, match: /1\.5/ },
    },
    {
      name: "a non-numeric relevance is an error",
      content: "q1 0 d1 abc\n",
      expect: { line: 1, match: /abc/ },
    },
    { name: "a NaN relevance is an error", content: "q1 0 d1 NaN\n", expect: { line: 1 } },
    {
      name: "a negative relevance is kept (trec_eval: in the pool, not judged)",
      content: "q1 0 d1 -1\nq1 0 d2 +1\n",
      expect: { value: { q1: { d1: -1, d2: 1 } } },
    },
    {
      name: "a relevance beyond 2^53 is an error, not silently rounded",
      content: "q1 0 d1 99999999999999999999\n",
      expect: { line: 1 },
    },
    {
      name: "an exponent or hex relevance is an error (trec_eval's atol would read 1 and 0)",
      content: "q1 0 d1 1e3\nq1 0 d2 0x10\n",
      expect: { line: 1 },
    },
    {
      name: "a judgement twice names both lines",
      content: "q1 0 d1 1\nq2 0 d1 1\nq1 0 d1 0\n",
      expect: { line: 3, match: /duplicate judgement .*first on line 1/ },
    },
    { name: "an empty file is empty qrels", content: "", expect: { value: {} } },
    {
      name: "non-UTF-8 bytes are refused at their line, never merged into one U+FFFD id",
      content: raw("q1 0 d\xff 1\nq1 0 d\xfe 0\n"),
      expect: { line: 1 },
    },
  ],
};

const BEIR_QRELS_SEED = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td1\t2\n";
const BEIR_QRELS: Format = {
  name: "BEIR qrels",
  file: "test.tsv",
  readers: {
    readBeirQrels: async (p) => plainQrels(await readBeirQrels(p)),
    readQrels: async (p) => plainQrels(await readQrels(p)),
  },
  seed: BEIR_QRELS_SEED,
  seedValue: { q1: { d1: 1, d2: 0 }, q2: { d1: 2 } },
  wellFormed: (v) => wellFormedQrels(v, true),
  cases: [
    {
      name: "no header is fine",
      content: "q1\td1\t1\nq2\td1\t2\n",
      expect: { value: { q1: { d1: 1 }, q2: { d1: 2 } } },
    },
    {
      name: "a document id with a space: one id, or an error (no TREC run could hold it)",
      content: "query-id\tcorpus-id\tscore\nq1\tdoc one\t1\n",
      expect: { anyOf: [{ value: { q1: { "doc one": 1 } } }, { line: 2 }] },
    },
    {
      name: "a header with other column names is an error at line 1",
      content: "qid\tdocid\tscore\nq1\td1\t1\n",
      expect: { line: 1 },
    },
    {
      name: "a header with two columns is an error at line 1",
      content: "query-id\tcorpus-id\nq1\td1\t1\n",
      expect: { line: 1, match: /header/ },
    },
    {
      name: "a missing field is an error at its line",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n",
      expect: { line: 3, match: /3 tab-separated fields/ },
    },
    {
      name: "an extra field is an error at its line",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t1\t7\n",
      expect: { line: 2, match: /3 tab-separated fields/ },
    },
    {
      name: "spaces instead of tabs is an error at its line",
      content: "query-id\tcorpus-id\tscore\nq1 d1 1\n",
      expect: { line: 2 },
    },
    {
      name: "an empty query id is an error",
      content: "query-id\tcorpus-id\tscore\n\td1\t1\n",
      expect: { line: 2, match: /empty/ },
    },
    {
      name: "an empty score is an error",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t\n",
      expect: { line: 2, match: /score/ },
    },
    {
      name: "a fractional score is an error",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t0.5\n",
      expect: { line: 2, match: /0\.5/ },
    },
    {
      name: "a NaN score is an error",
      content: "query-id\tcorpus-id\tscore\nq1\td1\tNaN\n",
      expect: { line: 2 },
    },
    {
      name: "a negative score is kept",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t-1\n",
      expect: { value: { q1: { d1: -1 } } },
    },
    {
      name: "a score beyond 2^53 is an error, not silently rounded",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t99999999999999999999\n",
      expect: { line: 2 },
    },
    {
      name: "an exponent or hex score is an error (BEIR's int() refuses both)",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t1e3\nq1\td2\t0x10\n",
      expect: { line: 2 },
    },
    {
      name: "a judgement twice names both lines",
      content: "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t1\n",
      expect: { line: 3, match: /first on line 2/ },
    },
    {
      name: "the header alone is empty qrels",
      content: "query-id\tcorpus-id\tscore\n",
      expect: { value: {} },
    },
    { name: "an empty file is empty qrels", content: "", expect: { value: {} } },
    {
      name: "non-UTF-8 bytes are refused at their line, never merged into one U+FFFD id",
      content: raw("query-id\tcorpus-id\tscore\nq1\td\xff\t1\nq1\td\xfe\t0\n"),
      expect: { line: 2 },
    },
  ],
};

function plainDocs(docs: Doc[]): [string, string, string][] {
  return docs.map((d) => [d.id, d.title, d.text]);
}

const CORPUS: Format = {
  name: "BEIR corpus",
  file: "corpus.jsonl",
  readers: { readBeirCorpus: async (p) => plainDocs(await readBeirCorpus(p)) },
  seed: [
    `{"_id": "d1", "title": "T1", "text": "first doc"}`,
    `{"_id": "d2", "text": "second doc"}`,
    `{"_id": 3, "title": "", "text": "third"}`,
  ].join("\n") + "\n",
  seedValue: [["d1", "T1", "first doc"], ["d2", "", "second doc"], ["3", "", "third"]],
  wellFormed: (v) => {
    const docs = v as [string, string, string][];
    ok(new Set(docs.map((d) => d[0])).size === docs.length, "an id twice");
    for (const [id, title, text] of docs) {
      assertId(id, "_id", true);
      ok(typeof title === "string" && typeof text === "string");
    }
  },
  cases: [
    {
      name: "invalid JSON is an error at its line",
      content: `{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": }\n`,
      expect: { line: 2, match: /invalid JSON/ },
    },
    {
      name: "a truncated last line is an error at its line",
      content: `{"_id": "d1", "text": "a"}\n{"_id": "d2", "te`,
      expect: { line: 2 },
    },
    {
      name: "two objects on one line is an error",
      content: `{"_id": "d1", "text": "a"}{"_id": "d2", "text": "b"}\n`,
      expect: { line: 1 },
    },
    { name: "a JSON array is an error", content: `[1, 2]\n`, expect: { line: 1 } },
    { name: "JSON null is an error", content: `null\n`, expect: { line: 1 } },
    { name: "a JSON string is an error", content: `"d1"\n`, expect: { line: 1 } },
    {
      name: "a missing _id is an error",
      content: `{"title": "T", "text": "a"}\n`,
      expect: { line: 1, match: /_id/ },
    },
    {
      name: "an empty _id is an error",
      content: `{"_id": "", "text": "a"}\n`,
      expect: { line: 1, match: /_id/ },
    },
    {
      name: "a boolean _id is an error",
      content: `{"_id": true, "text": "a"}\n`,
      expect: { line: 1 },
    },
    {
      name: "an object _id is an error",
      content: `{"_id": {}, "text": "a"}\n`,
      expect: { line: 1 },
    },
    {
      name: "a numeric _id beyond 2^53 is an error, not silently rounded",
      content: `{"_id": 12345678901234567890, "text": "a"}\n`,
      expect: { line: 1 },
    },
    {
      name: "an _id twice names both lines",
      content: `{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n`,
      expect: { line: 2, match: /first on line 1/ },
    },
    {
      name: "the number 1 and the string '1' are the same _id",
      content: `{"_id": 1, "text": "a"}\n{"_id": "1", "text": "b"}\n`,
      expect: { line: 2, match: /duplicate/ },
    },
    {
      name: "a missing text is an error",
      content: `{"_id": "d1", "title": "T"}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "a numeric text is an error",
      content: `{"_id": "d1", "text": 5}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "a numeric title is an error",
      content: `{"_id": "d1", "title": 5, "text": "a"}\n`,
      expect: { line: 1, match: /title/ },
    },
    {
      name: "a null title, 'id' for '_id' and extra fields are fine",
      content: `{"id": "d1", "title": null, "text": "a", "metadata": {"x": 1}}\n`,
      expect: { value: [["d1", "", "a"]] },
    },
    { name: "an empty file is an empty corpus", content: "", expect: { value: [] } },
    {
      name: "non-UTF-8 bytes are refused at their line, never merged into one U+FFFD id",
      content: raw(`{"_id": "d\xff", "text": "a"}\n{"_id": "d\xfe", "text": "b"}\n`),
      expect: { line: 1 },
    },
  ],
};

const QUERIES: Format = {
  name: "BEIR queries",
  file: "queries.jsonl",
  readers: { readBeirQueries: async (p) => Object.fromEntries(await readBeirQueries(p)) },
  seed: `{"_id": "q1", "text": "what does brca1 encode"}\n{"_id": "q2", "text": "cell"}\n`,
  seedValue: { q1: "what does brca1 encode", q2: "cell" },
  wellFormed: (v) => {
    for (const [id, text] of Object.entries(v as Record<string, string>)) {
      assertId(id, "_id", true);
      ok(typeof text === "string");
    }
  },
  cases: [
    {
      name: "invalid JSON is an error at its line",
      content: `{"_id": "q1", "text": "a"}\n\n{"_id": "q2" "text": "b"}\n`,
      expect: { line: 3, match: /invalid JSON/ },
    },
    {
      name: "a missing text is an error",
      content: `{"_id": "q1"}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "a null text is an error",
      content: `{"_id": "q1", "text": null}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "an _id twice names both lines",
      content: `{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n`,
      expect: { line: 2, match: /first on line 1/ },
    },
    {
      name: "an empty _id is an error",
      content: `{"_id": "", "text": "a"}\n`,
      expect: { line: 1 },
    },
    {
      name: "an empty text and extra fields are fine",
      content: `{"_id": "q1", "text": "", "metadata": {}}\n`,
      expect: { value: { q1: "" } },
    },
    { name: "an empty file is no queries", content: "", expect: { value: {} } },
    {
      name: "non-UTF-8 bytes are refused at their line",
      content: raw(`{"_id": "q1", "text": "caf\xe9"}\n`),
      expect: { line: 1 },
    },
  ],
};

const ID_TEXT: Format = {
  name: "MS MARCO collection/queries TSV",
  file: "collection.tsv",
  readers: {
    readMsMarcoCollection: async (p) => Object.fromEntries(await readMsMarcoCollection(p)),
    readMsMarcoQueries: async (p) => Object.fromEntries(await readMsMarcoQueries(p)),
  },
  seed: "1\tfirst passage\n2\tsecond passage\n",
  seedValue: { "1": "first passage", "2": "second passage" },
  wellFormed: (v) => {
    for (const [id, text] of Object.entries(v as Record<string, string>)) {
      assertId(id, "id", true);
      ok(typeof text === "string" && !text.includes("\t"));
    }
  },
  cases: [
    {
      name: "no tab is an error at its line",
      content: "1\tfirst\n2 second passage\n",
      expect: { line: 2, match: /2 tab-separated fields/ },
    },
    {
      name: "a third column is an error at its line",
      content: "1\tfirst\tx\n",
      expect: { line: 1, match: /2 tab-separated fields/ },
    },
    { name: "an empty id is an error", content: "\tfirst\n", expect: { line: 1, match: /empty/ } },
    { name: "a blank id is an error", content: "  \tfirst\n", expect: { line: 1, match: /empty/ } },
    {
      name: "an id twice names both lines",
      content: "1\ta\n2\tb\n1\tc\n",
      expect: { line: 3, match: /first on line 1/ },
    },
    { name: "an empty text is fine", content: "1\t\n", expect: { value: { "1": "" } } },
    { name: "an empty file is empty", content: "", expect: { value: {} } },
    {
      name: "non-UTF-8 bytes are refused at their line",
      content: raw("1\tcaf\xe9\n"),
      expect: { line: 1 },
    },
  ],
};

const MSMARCO_RUN: Format = {
  name: "MS MARCO run",
  file: "run.msmarco.tsv",
  readers: { readMsMarcoRun: async (p) => plainRun(await readMsMarcoRun(p)) },
  seed: "q1\tp1\t1\nq1\tp2\t2\nq2\tp1\t1\n",
  seedValue: { q1: [["p1", -1], ["p2", -2]], q2: [["p1", -1]] },
  wellFormed: (v) => {
    wellFormedRun(v as Record<string, [string, number][]>, true);
    for (const docs of Object.values(v as Record<string, [string, number][]>)) {
      const ranks = docs.map((d) => -d[1]).sort((a, b) => a - b);
      ok(ranks.every((r, i) => r === i + 1), `ranks ${ranks} are not 1..n`);
    }
  },
  cases: [
    { name: "rank 0 is an error", content: "q1\tp1\t0\n", expect: { line: 1, match: /rank/ } },
    { name: "a negative rank is an error", content: "q1\tp1\t-1\n", expect: { line: 1 } },
    { name: "a fractional rank is an error", content: "q1\tp1\t1.5\n", expect: { line: 1 } },
    { name: "a non-numeric rank is an error", content: "q1\tp1\tfirst\n", expect: { line: 1 } },
    {
      name: "a gap in the ranks names the query",
      content: "q1\tp1\t1\nq1\tp2\t3\n",
      expect: { error: /q1.*rank 2 is missing/ },
    },
    {
      name: "a passage twice for a query is an error at its line",
      content: "q1\tp1\t1\nq1\tp1\t2\n",
      expect: { line: 2, match: /twice/ },
    },
    {
      name: "a rank twice for a query is an error at its line",
      content: "q1\tp1\t1\nq1\tp2\t1\n",
      expect: { line: 2, match: /twice/ },
    },
    {
      name: "spaces instead of tabs is an error",
      content: "q1 p1 1\n",
      expect: { line: 1, match: /3 tab-separated fields/ },
    },
    { name: "an empty file is an empty run", content: "", expect: { value: {} } },
  ],
};

/** Fixed files the triples and negatives readers resolve ids against. */
let fixedDir: Promise<string> | undefined;
function fixtures(): Promise<string> {
  return fixedDir ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "bad_input_fixed_" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    await Deno.writeTextFile(`${dir}/queries.tsv`, "q1\twhat is a cell\nq2\tvirus gene\n");
    await Deno.writeTextFile(`${dir}/collection.tsv`, "p1\tone\np2\ttwo\np3\tthree\n");
    return dir;
  })();
}

const TRIPLES: Format = {
  name: "MS MARCO id triples",
  file: "triples.tsv",
  readers: {
    msmarcoTriples: async (p) => {
      const dir = await fixtures();
      const triples = await msmarcoTriples(p, {
        queries: `${dir}/queries.tsv`,
        collection: `${dir}/collection.tsv`,
      });
      return triples.map((t) => [t.qid, t.posId, t.negId]);
    },
  },
  seed: "q1\tp1\tp2\nq2\tp3\tp1\n",
  seedValue: [["q1", "p1", "p2"], ["q2", "p3", "p1"]],
  wellFormed: (v) => {
    for (const [q, p, n] of v as string[][]) {
      ok(["q1", "q2"].includes(q) && [p, n].every((x) => ["p1", "p2", "p3"].includes(x)));
    }
  },
  cases: [
    {
      name: "an unknown query after a blank line is named at its own line",
      content: "q1\tp1\tp2\n\nq9\tp1\tp2\n",
      expect: { line: 3, match: /unknown query 'q9'/ },
    },
    {
      name: "an unknown passage is an error at its line",
      content: "q1\tp1\tp2\nq2\tp3\tp9\n",
      expect: { line: 2, match: /p9/ },
    },
    {
      name: "two fields is an error",
      content: "q1\tp1\n",
      expect: { line: 1, match: /3 tab-separated fields/ },
    },
    { name: "four fields is an error", content: "q1\tp1\tp2\tp3\n", expect: { line: 1 } },
    { name: "an empty file is an error", content: "", expect: { error: /no triples/ } },
  ],
};

const NEG_CORPUS: Doc[] = ["d1", "d2", "d3", "d4"].map((id) => ({ id, title: "", text: id }));
const NEG_SET = {
  queries: new Map([["q1", "query one"], ["q2", "query two"]]),
  qrels: new Map([
    ["q1", new Map([["d1", 1], ["d3", 0]])],
    ["q2", new Map([["d2", 1]])],
  ]) as Qrels,
};

const NEGATIVES: Format = {
  name: "negatives file",
  file: "negatives.tsv",
  readers: {
    beirTriples: async (p) => {
      const { triples } = await beirTriples(NEG_CORPUS, NEG_SET, {
        negatives: { kind: "file", path: p },
        seed: 1,
      });
      return triples.map((t) => [t.qid, t.posId, t.negId]);
    },
  },
  seed: "q1 d1 d2\nq2\td2\td4\n",
  seedValue: [["q1", "d1", "d2"], ["q2", "d2", "d4"]],
  wellFormed: (v) => {
    for (const [q, p, n] of v as string[][]) {
      ok(NEG_SET.qrels.has(q) && [p, n].every((x) => NEG_CORPUS.some((d) => d.id === x)));
    }
  },
  cases: [
    {
      name: "two fields is an error at its line",
      content: "q1 d1 d2\nq2 d2\n",
      expect: { line: 2, match: /3 fields/ },
    },
    { name: "four fields is an error", content: "q1 d1 d2 d3\n", expect: { line: 1 } },
    {
      name: "an unknown document is an error at its line",
      content: "q1 d1 d9\n",
      expect: { line: 1, match: /d9/ },
    },
    {
      name: "a negative judged relevant is an error",
      content: "q2 d2 d2\n",
      expect: { line: 1, match: /relevant/ },
    },
    {
      name: "lines of other queries are skipped, comments too",
      content: "# negatives\nq9 d1 d2\nq1 d1 d4\n",
      expect: { value: [["q1", "d1", "d4"]] },
    },
    {
      name: "no line for a training query is an error naming the file",
      content: "q9 d1 d2\n",
      expect: { error: /no triple/ },
    },
    { name: "an empty file is an error", content: "", expect: { error: /no triple/ } },
    {
      name: "mined JSON lines (deno task mine): triples and tuples",
      content: '{"qid":"q1","pos":"d1","neg":"d2","score_pos":3,"score_neg":1}\n' +
        '{"qid":"q2","pos":"d2","negs":["d4","d1"],"score_pos":2,"scores_neg":[1,0.5]}\n',
      expect: { value: [["q1", "d1", "d2"], ["q2", "d2", "d4"], ["q2", "d2", "d1"]] },
    },
    {
      name: "a broken JSON line is an error at its line",
      content: 'q1 d1 d2\n{"qid":"q1","pos":"d1",\n',
      expect: { line: 2, match: /not valid JSON/ },
    },
    {
      name: "a JSON line without a negative is an error naming the field",
      content: '{"qid":"q1","pos":"d1"}\n',
      expect: { line: 1, match: /field neg/ },
    },
    {
      name: "an empty negs list is an error",
      content: '{"qid":"q1","pos":"d1","negs":[]}\n',
      expect: { line: 1, match: /negs/ },
    },
  ],
};

const teacherRows = async (p: string) =>
  (await readTeacherScores(p)).rows.map((r) => [r.qid, r.pos, r.neg, r.scorePos, r.scoreNeg]);

function wellFormedTeacher(v: unknown): void {
  const rows = v as [string, string, string, number, number][];
  ok(rows.length > 0, "no rows");
  for (const [q, p, n, sp, sn] of rows) {
    for (const id of [q, p, n]) assertId(id, "id", true);
    ok(Number.isFinite(sp) && Number.isFinite(sn), `scores ${sp} ${sn}`);
  }
}

const TEACHER_TSV: Format = {
  name: "teacher TSV",
  file: "teacher.tsv",
  readers: { readTeacherScores: teacherRows },
  seed: "9.5\t3.25\tq1\td1\td2\n8\t-7\tq2\td2\td4\n",
  seedValue: [["q1", "d1", "d2", 9.5, 3.25], ["q2", "d2", "d4", 8, -7]],
  wellFormed: wellFormedTeacher,
  cases: [
    {
      name: "spaces separate fields too",
      content: "9.5 3.25 q1 d1 d2\n",
      expect: { value: [["q1", "d1", "d2", 9.5, 3.25]] },
    },
    {
      name: "four fields is an error at its line",
      content: "9.5\t3.25\tq1\td1\td2\n8\tq2\td2\td4\n",
      expect: { line: 2, match: /5 fields/ },
    },
    { name: "six fields is an error", content: "9.5 3.25 q1 d1 d2 x\n", expect: { line: 1 } },
    {
      name: "an infinite score is an error (Margin-MSE needs finite targets)",
      content: "inf 3.25 q1 d1 d2\n",
      expect: { line: 1, match: /score_pos/ },
    },
    {
      name: "a score beyond double range is an error",
      content: "9.5 1e400 q1 d1 d2\n",
      expect: { line: 1, match: /score_neg/ },
    },
    { name: "a NaN score is an error", content: "NaN 1 q1 d1 d2\n", expect: { line: 1 } },
    {
      name: "a header line is an error at line 1",
      content: "score_pos score_neg qid pid_pos pid_neg\n9.5 3.25 q1 d1 d2\n",
      expect: { line: 1 },
    },
    {
      name: "a triple scored twice differently names both lines",
      content: "9.5 3.25 q1 d1 d2\n9.5 3.5 q1 d1 d2\n",
      expect: { line: 2, match: /line 1/ },
    },
    {
      name: "a triple repeated identically is kept once",
      content: "9.5 3.25 q1 d1 d2\n9.5 3.25 q1 d1 d2\n",
      expect: { value: [["q1", "d1", "d2", 9.5, 3.25]] },
    },
    { name: "an empty file is an error", content: "", expect: { error: /no teacher scores/ } },
    {
      name: "blank lines only is an error",
      content: "\n\n",
      expect: { error: /no teacher scores/ },
    },
    {
      name: "non-UTF-8 bytes are refused at their line, never merged into one U+FFFD id",
      content: raw("9 3 q1 d\xff d2\n9 4 q1 d\xfe d2\n"),
      expect: { line: 1 },
    },
  ],
};

const TEACHER_JSONL: Format = {
  name: "teacher JSONL",
  file: "teacher.jsonl",
  readers: { readTeacherScores: teacherRows },
  seed: [
    `{"qid": "q1", "pos": "d1", "neg": "d2", "score_pos": 9.5, "score_neg": 3.25}`,
    `{"qid": 2, "pos": "d2", "neg": "d4", "score_pos": "8", "score_neg": -7}`,
  ].join("\n") + "\n",
  seedValue: [["q1", "d1", "d2", 9.5, 3.25], ["2", "d2", "d4", 8, -7]],
  wellFormed: wellFormedTeacher,
  cases: [
    {
      name: "invalid JSON is an error at its line",
      content:
        `{"qid": "q1", "pos": "d1", "neg": "d2", "score_pos": 9.5, "score_neg": 3}\n{"qid": }\n`,
      expect: { line: 2, match: /invalid JSON/ },
    },
    { name: "a JSON array is an error", content: `[9.5, 3]\n`, expect: { line: 1 } },
    {
      name: "a missing score_pos is an error",
      content: `{"qid": "q1", "pos": "d1", "neg": "d2", "score_neg": 3}\n`,
      expect: { line: 1, match: /score_pos/ },
    },
    {
      name: "a null score is an error",
      content: `{"qid": "q1", "pos": "d1", "neg": "d2", "score_pos": null, "score_neg": 3}\n`,
      expect: { line: 1, match: /score_pos/ },
    },
    {
      name: "an empty-string score is an error",
      content: `{"qid": "q1", "pos": "d1", "neg": "d2", "score_pos": "", "score_neg": 3}\n`,
      expect: { line: 1, match: /score_pos/ },
    },
    {
      name: "an empty qid is an error",
      content: `{"qid": "", "pos": "d1", "neg": "d2", "score_pos": 1, "score_neg": 3}\n`,
      expect: { line: 1, match: /qid/ },
    },
    {
      name: "a fractional numeric qid is an error",
      content: `{"qid": 1.5, "pos": "d1", "neg": "d2", "score_pos": 1, "score_neg": 3}\n`,
      expect: { line: 1, match: /qid/ },
    },
    {
      name: "a numeric qid beyond 2^53 is an error, not silently rounded",
      content:
        `{"qid": 12345678901234567890, "pos": "d1", "neg": "d2", "score_pos": 1, "score_neg": 3}\n`,
      expect: { line: 1, match: /qid/ },
    },
    {
      name: "a TSV line in a .jsonl file is an error",
      content: "9.5\t3.25\tq1\td1\td2\n",
      expect: { line: 1, match: /JSON/ },
    },
    { name: "an empty file is an error", content: "", expect: { error: /no teacher scores/ } },
  ],
};

const TEXTS: Format = {
  name: "texts JSONL",
  file: "texts.jsonl",
  readers: {
    readTextsJsonl: async (p) => (await readTextsJsonl(p)).map((r) => [r.id, r.text]),
  },
  seed: [
    `{"id": "a", "text": "first"}`,
    `{"_id": 7, "title": "T", "text": "second"}`,
    `{"id": "c", "title": "", "text": " third "}`,
  ].join("\n") + "\n",
  seedValue: [["a", "first"], ["7", "T second"], ["c", "third"]],
  wellFormed: wellFormedIdTexts,
  cases: [
    {
      name: "invalid JSON is an error at its line",
      content: `{"id": "a", "text": "x"}\n\n{"id": "b" "text": "y"}\n`,
      expect: { line: 3, match: /invalid JSON/ },
    },
    { name: "a JSON array is an error", content: `["a", "x"]\n`, expect: { line: 1 } },
    {
      name: "a missing id is an error",
      content: `{"text": "x"}\n`,
      expect: { line: 1, match: /id/ },
    },
    { name: "an empty id is an error", content: `{"id": "", "text": "x"}\n`, expect: { line: 1 } },
    { name: "a null id is an error", content: `{"id": null, "text": "x"}\n`, expect: { line: 1 } },
    {
      name: "a boolean id is an error",
      content: `{"id": false, "text": "x"}\n`,
      expect: { line: 1 },
    },
    {
      name: "an id that overflows to Infinity is an error",
      content: `{"id": 1e400, "text": "x"}\n`,
      expect: { line: 1 },
    },
    {
      name: "a numeric id beyond 2^53 is an error, not silently rounded",
      content: `{"id": 12345678901234567890, "text": "x"}\n`,
      expect: { line: 1 },
    },
    {
      name: "a missing text is an error",
      content: `{"id": "a", "body": "x"}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "a numeric text is an error",
      content: `{"id": "a", "text": 5}\n`,
      expect: { line: 1, match: /text/ },
    },
    {
      name: "a numeric title is an error",
      content: `{"id": "a", "title": 5, "text": "x"}\n`,
      expect: { line: 1, match: /title/ },
    },
    {
      name: "the number 1 and the string '1' are the same id",
      content: `{"id": 1, "text": "x"}\n{"_id": "1", "text": "y"}\n`,
      expect: { line: 2, match: /duplicate id/ },
    },
    { name: "an empty file is no texts", content: "", expect: { value: [] } },
    {
      name: "non-UTF-8 bytes are refused at their line",
      content: raw(`{"id": "a", "text": "caf\xe9"}\n`),
      expect: { line: 1 },
    },
  ],
};

/** Every line format of the suite. */
export const FORMATS: Format[] = [
  TREC_RUN,
  TREC_QRELS,
  BEIR_QRELS,
  CORPUS,
  QUERIES,
  ID_TEXT,
  MSMARCO_RUN,
  TRIPLES,
  NEGATIVES,
  TEACHER_TSV,
  TEACHER_JSONL,
  TEXTS,
];

// ---- safetensors -------------------------------------------------------------------------------

/** A valid safetensors file: F32 [2, 2], I32 [2], F16 [2], with metadata. */
export function safetensorsSeed(): Uint8Array {
  const data = new Uint8Array(28);
  const v = new DataView(data.buffer);
  [1, 2, 3, 4].forEach((x, i) => v.setFloat32(i * 4, x, true));
  v.setInt32(16, 5, true);
  v.setInt32(20, -6, true);
  v.setUint16(24, 0x3c00, true); // 1.0
  v.setUint16(26, 0xc000, true); // -2.0
  return safetensorsBytes({
    __metadata__: { format: "pt" },
    w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
    i: { dtype: "I32", shape: [2], data_offsets: [16, 24] },
    h: { dtype: "F16", shape: [2], data_offsets: [24, 28] },
  }, data);
}

const SEED_TENSORS = {
  w: { shape: [2, 2], data: [1, 2, 3, 4] },
  i: { shape: [2], data: [5, -6] },
  h: { shape: [2], data: [1, -2] },
};

/** Named tensors as plain values: name -> {shape, data}. */
export function plainTensors(m: Map<string, NamedTensor>): Record<string, unknown> {
  return Object.fromEntries(
    [...m].map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.data) }]),
  );
}

/** Reads a safetensors file as plain values. */
export const readTensors = async (p: string) => plainTensors(await readSafetensors(p));

/** Throws unless every tensor's data fits its shape. */
export function wellFormedTensors(v: unknown): void {
  for (
    const [name, t] of Object.entries(v as Record<string, { shape: number[]; data: number[] }>)
  ) {
    ok(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${name}: shape ${t.shape}`);
    ok(t.data.length === t.shape.reduce((a, b) => a * b, 1), `${name}: size vs shape`);
  }
}

/** A safetensors header entry (any types, to write bad ones). */
export function entry(dtype: unknown, shape: unknown, offsets: unknown): Record<string, unknown> {
  return { dtype, shape, data_offsets: offsets };
}

/** Malformed (and tricky but valid) safetensors files. */
export const SAFETENSORS_CASES: Case[] = [
  { name: "the seed reads right", content: safetensorsSeed(), expect: { value: SEED_TENSORS } },
  {
    name: "a scalar (shape []) is one value",
    content: safetensorsBytes({ s: entry("F32", [], [0, 4]) }, new Uint8Array(4)),
    expect: { value: { s: { shape: [], data: [0] } } },
  },
  { name: "an empty file is an error", content: new Uint8Array(0), expect: { error: /8-byte/ } },
  { name: "a file shorter than 8 bytes", content: new Uint8Array(5), expect: { error: /8-byte/ } },
  {
    name: "a header size larger than the file",
    content: safetensorsBytes({}, new Uint8Array(0), 1000n),
    expect: { error: /header size/ },
  },
  {
    name: "a header size of 2^63",
    content: safetensorsBytes({}, new Uint8Array(0), 1n << 63n),
    expect: { error: /header size/ },
  },
  {
    name: "an empty tensor (shape [0]) is fine",
    content: safetensorsBytes({ e: entry("F32", [0], [0, 0]) }),
    expect: { value: { e: { shape: [0], data: [] } } },
  },
  {
    name: "__metadata__ that is not an object of strings",
    content: safetensorsBytes(
      { __metadata__: { step: 7 }, w: entry("F32", [1], [0, 4]) },
      new Uint8Array(4),
    ),
    expect: { error: /__metadata__/ },
  },
  {
    name: "a header size of 0",
    content: safetensorsBytes("", new Uint8Array(8)),
    expect: { error: /header/ },
  },
  {
    name: "a header that is not JSON",
    content: safetensorsBytes("{bad"),
    expect: { error: /JSON/ },
  },
  { name: "a JSON array header", content: safetensorsBytes("[]"), expect: { error: /object/ } },
  { name: "a JSON null header", content: safetensorsBytes("null"), expect: { error: /object/ } },
  {
    name: "a tensor entry that is a number",
    content: safetensorsBytes({ w: 5 }),
    expect: { error: /w: / },
  },
  {
    name: "an unknown dtype",
    content: safetensorsBytes({ w: entry("Q4", [2], [0, 8]) }, new Uint8Array(8)),
    expect: { error: /Q4/ },
  },
  {
    name: "a missing dtype",
    content: safetensorsBytes({ w: { shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    expect: { error: /dtype/ },
  },
  {
    name: "data_offsets past the data",
    content: safetensorsBytes({ w: entry("F32", [4], [0, 16]) }, new Uint8Array(8)),
    expect: { error: /data_offsets|outside/ },
  },
  {
    name: "data_offsets reversed",
    content: safetensorsBytes({ w: entry("F32", [2], [8, 0]) }, new Uint8Array(8)),
    expect: { error: /data_offsets|outside/ },
  },
  {
    name: "negative data_offsets",
    content: safetensorsBytes({ w: entry("F32", [2], [-4, 4]) }, new Uint8Array(8)),
    expect: { error: /data_offsets|outside/ },
  },
  {
    name: "fractional data_offsets",
    content: safetensorsBytes({ w: entry("F32", [2], [0.5, 8.5]) }, new Uint8Array(12)),
    expect: { error: /data_offsets/ },
  },
  {
    name: "data_offsets given as strings",
    content: safetensorsBytes({ w: entry("F32", [2], ["0", "8"]) }, new Uint8Array(8)),
    expect: { error: /data_offsets/ },
  },
  {
    name: "data_offsets of three numbers",
    content: safetensorsBytes({ w: entry("F32", [2], [0, 4, 8]) }, new Uint8Array(8)),
    expect: { error: /data_offsets/ },
  },
  {
    name: "data_offsets not matching shape x dtype size",
    content: safetensorsBytes({ w: entry("F32", [3], [0, 8]) }, new Uint8Array(8)),
    expect: { error: /8 bytes for 3/ },
  },
  {
    name: "an odd byte count for F16",
    content: safetensorsBytes({ w: entry("F16", [2], [0, 3]) }, new Uint8Array(4)),
    expect: { error: /bytes for 2/ },
  },
  {
    name: "overlapping tensors",
    content: safetensorsBytes(
      { a: entry("F32", [2], [0, 8]), b: entry("F32", [2], [4, 12]) },
      new Uint8Array(12),
    ),
    expect: { error: /overlap|data_offsets/ },
  },
  {
    name: "a negative dimension",
    content: safetensorsBytes({ w: entry("F32", [-2, -1], [0, 8]) }, new Uint8Array(8)),
    expect: { error: /shape/ },
  },
  {
    name: "a fractional dimension",
    content: safetensorsBytes({ w: entry("F32", [1.5], [0, 6]) }, new Uint8Array(8)),
    expect: { error: /shape/ },
  },
  {
    name: "a shape that is not an array",
    content: safetensorsBytes({ w: entry("F32", 2, [0, 8]) }, new Uint8Array(8)),
    expect: { error: /shape/ },
  },
  {
    name: "dimensions whose product overflows",
    content: safetensorsBytes(
      { w: entry("F32", [2 ** 40, 2 ** 40, 2 ** 40], [0, 8]) },
      new Uint8Array(8),
    ),
    expect: { error: /bytes for|shape/ },
  },
  {
    name: "an I64 value that does not fit int32",
    content: (() => {
      const d = new Uint8Array(8);
      new DataView(d.buffer).setBigInt64(0, 1n << 40n, true);
      return safetensorsBytes({ n: entry("I64", [1], [0, 8]) }, d);
    })(),
    expect: { error: /int32/ },
  },
  {
    name: "a file cut inside the data",
    content: safetensorsSeed().subarray(0, safetensorsSeed().length - 6),
    expect: { error: /data_offsets|outside/ },
  },
];

// ---- model directories (config.json, tokenizer.json, weights) ----------------------------------

/** The tiny BERT of the parity fixtures (config.json, model.safetensors; no tokenizer). */
export const BERT = new URL("../fixtures/hf_parity/bert/", import.meta.url).pathname;

/**
 * One model directory: a tiny parity fixture (BERT unless `base` says otherwise) with a
 * 512-token tokenizer, edited.
 */
export interface ModelCase {
  /** What the case is about. */
  name: string;
  /** The fixture the directory starts from (default bert). */
  base?: "bert" | "distilbert" | "mpnet";
  /** Edits config.json: returns the new object, or a string written as is. */
  config?: (c: Record<string, unknown>) => unknown;
  /** Edits tokenizer.json likewise. */
  tokenizer?: (t: Record<string, unknown>) => unknown;
  /** Edits the weights by name (re-serialised), or replaces the bytes. */
  weights?: ((w: Map<string, NamedTensor>) => void) | Uint8Array;
  /** Other files: content, or null to remove. */
  files?: Record<string, string | null>;
  /** The summary of the loaded model, or an error naming `file` (relative to the directory). */
  expect: { value: Record<string, unknown> } | { error: RegExp; file: string };
}

const BASE_SUMMARY = {
  family: "bert",
  hidden: 32,
  heads: 4,
  layers: 2,
  vocabSize: 512,
  maxLength: 64,
  positionOffset: 0,
  positionRows: 64,
  wordRows: 512,
  idsInRange: true,
};

/** Model directories with one file broken, and what loading them must give. */
export const MODEL_CASES: ModelCase[] = [
  { name: "the base directory loads", expect: { value: BASE_SUMMARY } },
  {
    name: "the DistilBERT base directory loads",
    base: "distilbert",
    expect: { value: { ...BASE_SUMMARY, family: "distilbert" } },
  },
  {
    name: "the MPNet base directory loads (positions offset by pad_token_id + 1)",
    base: "mpnet",
    expect: { value: { ...BASE_SUMMARY, family: "mpnet", positionOffset: 2, positionRows: 66 } },
  },
  {
    name: "DistilBERT: n_heads not dividing dim",
    base: "distilbert",
    config: (c) => ({ ...c, n_heads: 3 }),
    expect: { error: /n_heads/, file: "config.json" },
  },
  {
    name: "DistilBERT: sinusoidal position embeddings",
    base: "distilbert",
    config: (c) => ({ ...c, sinusoidal_pos_embds: true }),
    expect: { error: /sinusoidal/, file: "config.json" },
  },
  {
    name: "MPNet: max_position_embeddings leaving no position after the padding offset",
    base: "mpnet",
    config: (c) => ({ ...c, max_position_embeddings: 2 }),
    expect: { error: /max_position_embeddings/, file: "" },
  },
  {
    name: "MPNet: relative_attention_num_buckets as a string",
    base: "mpnet",
    config: (c) => ({ ...c, relative_attention_num_buckets: "32" }),
    expect: { error: /relative_attention_num_buckets/, file: "config.json" },
  },
  {
    name: "a selfmargin USE-lite checkpoint missing weights names its directory",
    config: () => ({ model_type: "selfmargin-use-lite" }),
    expect: { error: /missing weight|layers\.0/, file: "" },
  },
  {
    name: "a selfmargin USE-lite checkpoint with weights of the wrong shapes",
    config: () => ({ model_type: "selfmargin-use-lite" }),
    weights: (w) => {
      w.clear();
      for (const name of USE_LITE_NAMES) w.set(name, { shape: [1], data: new Float32Array(1) });
    },
    expect: { error: /shape/, file: "" },
  },
  {
    name: "tokenizer_config.json's model_max_length lowers the maximum length",
    files: { "tokenizer_config.json": JSON.stringify({ model_max_length: 16 }) },
    expect: { value: { ...BASE_SUMMARY, maxLength: 16 } },
  },
  {
    name: "config.json that is not JSON",
    config: () => `{"model_type": "bert",`,
    expect: { error: /./, file: "config.json" },
  },
  {
    name: "config.json that is JSON null",
    config: () => "null",
    expect: { error: /./, file: "config.json" },
  },
  {
    name: "config.json that is a JSON array",
    config: () => "[]",
    expect: { error: /./, file: "config.json" },
  },
  { name: "config.json missing", files: { "config.json": null }, expect: { error: /./, file: "" } },
  {
    name: "missing hidden_size",
    config: (c) => ({ ...c, hidden_size: undefined }),
    expect: { error: /hidden_size/, file: "config.json" },
  },
  {
    name: "hidden_size as a string",
    config: (c) => ({ ...c, hidden_size: "32" }),
    expect: { error: /hidden_size/, file: "config.json" },
  },
  {
    name: "negative hidden_size",
    config: (c) => ({ ...c, hidden_size: -32 }),
    expect: { error: /hidden_size/, file: "config.json" },
  },
  {
    name: "num_attention_heads not dividing hidden_size",
    config: (c) => ({ ...c, num_attention_heads: 5 }),
    expect: { error: /num_attention_heads/, file: "config.json" },
  },
  {
    name: "num_attention_heads 0",
    config: (c) => ({ ...c, num_attention_heads: 0 }),
    expect: { error: /num_attention_heads/, file: "config.json" },
  },
  {
    name: "negative num_hidden_layers",
    config: (c) => ({ ...c, num_hidden_layers: -1 }),
    expect: { error: /num_hidden_layers/, file: "config.json" },
  },
  {
    name: "fractional num_hidden_layers",
    config: (c) => ({ ...c, num_hidden_layers: 1.5 }),
    expect: { error: /num_hidden_layers/, file: "config.json" },
  },
  {
    name: "intermediate_size 0",
    config: (c) => ({ ...c, intermediate_size: 0 }),
    expect: { error: /intermediate_size/, file: "config.json" },
  },
  {
    name: "negative vocab_size",
    config: (c) => ({ ...c, vocab_size: -1 }),
    expect: { error: /vocab_size/, file: "config.json" },
  },
  {
    name: "max_position_embeddings beyond the position table",
    config: (c) => ({ ...c, max_position_embeddings: 128 }),
    expect: { error: /max_position_embeddings|position_embeddings/, file: "" },
  },
  {
    name: "max_position_embeddings 0",
    config: (c) => ({ ...c, max_position_embeddings: 0 }),
    expect: { error: /max_position_embeddings/, file: "config.json" },
  },
  {
    name: "an unknown activation",
    config: (c) => ({ ...c, hidden_act: "swish" }),
    expect: { error: /hidden_act|activation/, file: "config.json" },
  },
  {
    name: "an unknown model_type",
    config: (c) => ({ ...c, model_type: "gpt2" }),
    expect: { error: /model_type/, file: "config.json" },
  },
  {
    name: "no model_type",
    config: (c) => ({ ...c, model_type: undefined }),
    expect: { error: /model_type/, file: "config.json" },
  },
  {
    name: "relative position embeddings",
    config: (c) => ({ ...c, position_embedding_type: "relative_key" }),
    expect: { error: /position_embedding_type/, file: "config.json" },
  },
  {
    name: "layer_norm_eps as a string",
    config: (c) => ({ ...c, layer_norm_eps: "1e-12" }),
    expect: { error: /layer_norm_eps/, file: "config.json" },
  },
  {
    name: "negative layer_norm_eps",
    config: (c) => ({ ...c, layer_norm_eps: -1 }),
    expect: { error: /layer_norm_eps/, file: "config.json" },
  },
  {
    name: "type_vocab_size not matching the table",
    config: (c) => ({ ...c, type_vocab_size: 3 }),
    expect: { error: /token_type_embeddings|type_vocab_size/, file: "" },
  },
  {
    name: "vocab_size not matching the word table",
    config: (c) => ({ ...c, vocab_size: 400 }),
    expect: { error: /word_embeddings|vocab_size/, file: "" },
  },
  {
    name: "a tokenizer with more tokens than the word table",
    tokenizer: () => tinyTokenizerJson(600),
    expect: { error: /vocab|tokenizer/, file: "" },
  },
  {
    name: "tokenizer.json that is not JSON",
    tokenizer: () => `{"model": `,
    expect: { error: /./, file: "tokenizer.json" },
  },
  {
    name: "tokenizer.json that is {}",
    tokenizer: () => ({}),
    expect: { error: /./, file: "tokenizer.json" },
  },
  {
    name: "tokenizer.json with an unknown model type",
    tokenizer: (t) => ({ ...t, model: { type: "Foo", vocab: {} } }),
    expect: { error: /./, file: "tokenizer.json" },
  },
  {
    name: "tokenizer.json missing",
    files: { "tokenizer.json": null },
    expect: { error: /./, file: "tokenizer.json" },
  },
  {
    name: "tokenizer_config.json that is not JSON is named, not silently ignored",
    files: { "tokenizer_config.json": `{"model_max_length": 16` },
    expect: { error: /./, file: "tokenizer_config.json" },
  },
  {
    name: "no weights file",
    files: { "model.safetensors": null },
    expect: { error: /model\.safetensors/, file: "" },
  },
  {
    name: "truncated weights",
    weights: new Uint8Array(100),
    expect: { error: /./, file: "model.safetensors" },
  },
  {
    name: "a weight missing",
    weights: (w) => void w.delete("encoder.layer.1.output.dense.bias"),
    expect: { error: /encoder\.layer\.1\.output\.dense\.bias/, file: "" },
  },
  {
    name: "a weight of the wrong shape",
    weights: (w) => {
      w.set("encoder.layer.0.attention.self.query.bias", {
        shape: [31],
        data: new Float32Array(31),
      });
    },
    expect: { error: /attention\.self\.query\.bias/, file: "" },
  },
];

/** The tensor names of a USE-lite checkpoint (src/models/use_lite.ts). */
const USE_LITE_NAMES = [
  "embeddings.word_embeddings",
  "head",
  "layers.0.residual",
  ...[0, 1].flatMap((l) =>
    ["attention.query", "attention.key", "attention.value", "attention.output"]
      .concat(["attention_norm", "ffn.in", "ffn.out", "ffn_norm"])
      .map((n) => `layers.${l}.${n}`)
  ),
].flatMap((n) =>
  n === "embeddings.word_embeddings" ? [`${n}.weight`] : [`${n}.weight`, `${n}.bias`]
);

/** Writes the model directory of a case into `dir`. */
export async function writeModelDir(dir: string, c: Partial<ModelCase>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const fixture = `${BERT}../${c.base ?? "bert"}/`;
  const config = JSON.parse(await Deno.readTextFile(`${fixture}config.json`));
  const cfg = c.config ? c.config(config) : config;
  await Deno.writeTextFile(
    `${dir}/config.json`,
    typeof cfg === "string" ? cfg : JSON.stringify(cfg),
  );
  const tok = c.tokenizer ? c.tokenizer(tinyTokenizerJson()) : tinyTokenizerJson();
  await Deno.writeTextFile(
    `${dir}/tokenizer.json`,
    typeof tok === "string" ? tok : JSON.stringify(tok),
  );
  let weights: Uint8Array = await Deno.readFile(`${fixture}model.safetensors`);
  if (c.weights instanceof Uint8Array) weights = c.weights;
  else if (c.weights) {
    const m = parseSafetensors(weights).tensors;
    c.weights(m);
    weights = serializeSafetensors(m);
  }
  await Deno.writeFile(`${dir}/model.safetensors`, weights);
  for (const [name, content] of Object.entries(c.files ?? {})) {
    if (content === null) await Deno.remove(`${dir}/${name}`).catch(() => {});
    else await Deno.writeTextFile(`${dir}/${name}`, content);
  }
}

const SAMPLE = "What does a cell encode? Proteins, 42 of them.";

/** Whether every id is an integer row of a `rows`-row embedding table. */
function idsInRange(ids: ArrayLike<number>, rows: number): boolean {
  return Array.from(ids).every((id) => Number.isInteger(id) && id >= 0 && id < rows);
}

/**
 * Loads a model directory and returns a summary of its sizes (and whether a sample text
 * tokenizes into rows of the word table); frees its GPU tensors.
 */
export async function loadSummary(dir: string): Promise<Record<string, unknown>> {
  const model = await loadEncoder(await getGpu(), dir);
  try {
    const c = model.config;
    return {
      family: c.family,
      hidden: c.hidden,
      heads: c.heads,
      layers: c.layers,
      vocabSize: c.vocabSize,
      maxLength: model.maxLength,
      positionOffset: c.positionOffset,
      positionRows: model.params.positionEmbeddings?.shape[0] ?? 0,
      wordRows: model.params.wordEmbeddings.shape[0],
      idsInRange: idsInRange(model.tokenizer.encode(SAMPLE, model.maxLength).ids, c.vocabSize),
    };
  } finally {
    for (const t of model.named.values()) t.destroy();
  }
}

/** A loaded model whose sizes agree with each other and with its tables. */
export function wellFormedModel(v: unknown): void {
  const s = v as Record<string, number>;
  ok(s.idsInRange, "the tokenizer gives ids outside the word table");
  for (const k of ["hidden", "heads", "layers", "vocabSize", "maxLength"]) {
    ok(Number.isInteger(s[k]) && s[k] > 0, `${k} is ${s[k]}`);
  }
  ok(s.hidden % s.heads === 0, `${s.heads} heads do not divide hidden ${s.hidden}`);
  ok(s.wordRows === s.vocabSize, `vocab ${s.vocabSize} vs ${s.wordRows} rows`);
  ok(
    s.positionOffset + s.maxLength <= s.positionRows,
    `maxLength ${s.maxLength} (+${s.positionOffset}) beyond ${s.positionRows} position rows`,
  );
}

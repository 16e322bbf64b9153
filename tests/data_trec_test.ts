// TREC qrels/run readers and writers: errors name file and line; duplicates are errors (as in
// trec_eval); comments, blank lines, CRLF and a missing final newline are accepted; writing
// then reading a run preserves trec_eval's ranking, ties included.

import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  formatTrecQrels,
  formatTrecRun,
  parseTrecQrels,
  parseTrecRun,
  readTrecQrels,
  readTrecRun,
  writeTrecRun,
} from "../src/data/trec.ts";
import { DataFormatError, type Run } from "../src/data/types.ts";
import { trecOrder } from "../src/data/order.ts";

Deno.test("qrels: comments, blank lines, tabs and CRLF are fine", () => {
  const q = parseTrecQrels("# judged by NIST\r\n\r\n1 0 d1 1\r\n1\t0\td2\t0\n2 0 d1 -1");
  deepStrictEqual([...q.keys()], ["1", "2"]);
  strictEqual(q.get("1")!.get("d1"), 1);
  strictEqual(q.get("1")!.get("d2"), 0);
  strictEqual(q.get("2")!.get("d1"), -1);
});

Deno.test("qrels errors name the file and line", () => {
  throws(
    () => parseTrecQrels("1 0 d1 1\n1 0 d2\n", "q.txt"),
    (e: Error) =>
      e instanceof DataFormatError && e.line === 2 &&
      e.message === "q.txt:2: expected 4 whitespace-separated fields (qid iter docno rel), found 3",
  );
  throws(
    () => parseTrecQrels("1 0 d1 yes\n", "q.txt"),
    /^DataFormatError: q.txt:1: relevance 'yes'/,
  );
  throws(() => parseTrecQrels("1 0 d1 1 extra\n", "q.txt"), /q.txt:1: expected 4/);
  throws(
    () => parseTrecQrels("1 0 d1 1\n1 0 d2 0\n1 0 d1 0\n", "q.txt"),
    /q.txt:3: duplicate judgement of document 'd1' for query '1' \(first on line 1\)/,
  );
});

Deno.test("run: six fields, extra ignored, last run_id kept, rank column not used", () => {
  const { run, runId } = parseTrecRun(
    "# comment\n1 Q0 a 7 0.5 first trailing junk\n1 Q0 b 1 1.5e0 second\n",
  );
  strictEqual(runId, "second");
  deepStrictEqual(run.get("1")!.docIds, ["a", "b"]);
  deepStrictEqual(Array.from(run.get("1")!.scores), [0.5, 1.5]);
});

Deno.test("run errors name the file and line; a duplicate document cites both lines", () => {
  throws(() => parseTrecRun("1 Q0 a 1 0.5\n", "r.txt"), /r.txt:1: expected 6 whitespace-separated/);
  throws(() => parseTrecRun("1 Q0 a 1 high x\n", "r.txt"), /r.txt:1: score 'high' is not a number/);
  throws(
    () => parseTrecRun("1 Q0 a 1 0.5 x\n2 Q0 a 1 0.5 x\n1 Q0 a 2 0.4 x\n", "r.txt"),
    /r.txt:3: duplicate document 'a' for query '1' \(first on line 1\)/,
  );
});

Deno.test("file readers stream and report the path; final line without newline is read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    for (let i = 0; i < 50000; i++) lines.push(`q${i % 7} Q0 doc${i} ${i} ${i % 13} r`);
    await Deno.writeTextFile(`${dir}/run.txt`, lines.join("\n")); // no final newline
    const { run } = await readTrecRun(`${dir}/run.txt`);
    let total = 0;
    for (const r of run.values()) total += r.docIds.length;
    strictEqual(total, 50000);
    await Deno.writeTextFile(`${dir}/bad.txt`, "1 0 d 1\n1 0 e 1\n1 0 f\n");
    await rejects(readTrecQrels(`${dir}/bad.txt`), (e: Error) => {
      ok(e.message.startsWith(`${dir}/bad.txt:3: `), e.message);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writing a run then reading it back keeps trec_eval's order, ties included", async () => {
  const run: Run = new Map([
    ["2", { docIds: ["x", "y", "z", "w"], scores: [0.1 + 0.2, 0.3, 0.3, -0] }],
    ["10", { docIds: ["a", "b"], scores: [1, 2] }],
  ]);
  const text = formatTrecRun(run, { runId: "test" });
  // Queries in byte order ("10" < "2"), ranks 1.., ties (y, z at 0.3) by id descending, full
  // precision scores (0.30000000000000004 is not 0.3).
  strictEqual(
    text,
    "10 Q0 b 1 2 test\n10 Q0 a 2 1 test\n" +
      "2 Q0 x 1 0.30000000000000004 test\n2 Q0 z 2 0.3 test\n2 Q0 y 3 0.3 test\n" +
      "2 Q0 w 4 0 test\n",
  );
  const back = parseTrecRun(text).run;
  for (const [qid, r] of run) {
    const a = trecOrder(r);
    const b = trecOrder(back.get(qid)!);
    deepStrictEqual([...a].map((i) => r.docIds[i]), [...b].map((i) => back.get(qid)!.docIds[i]));
  }
  strictEqual(formatTrecRun(run, { depth: 1 }).split("\n").length, 3);
  const dir = await Deno.makeTempDir();
  try {
    await writeTrecRun(`${dir}/r.txt`, run);
    strictEqual((await readTrecRun(`${dir}/r.txt`)).runId, "selfmargin");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("qrels writer round-trips", () => {
  const q = parseTrecQrels("2 0 b 1\n1 0 a 2\n1 0 c -1\n");
  strictEqual(formatTrecQrels(q), "1 0 a 2\n1 0 c -1\n2 0 b 1\n");
  deepStrictEqual(parseTrecQrels(formatTrecQrels(q)), q);
});

Deno.test("run scores are read as trec_eval (strtod) reads them: inf in any case, nan refused", () => {
  const { run } = parseTrecRun(
    [
      "1 Q0 a 1 inf x",
      "1 Q0 b 2 -INF x",
      "1 Q0 c 3 +Infinity x",
      "1 Q0 d 4 infinity x",
      "1 Q0 e 5 1e3 x",
      "1 Q0 f 6 .5 x",
      "1 Q0 g 7 0x1.8p1 x",
      "1 Q0 h 8 -0x10 x",
    ].join("\n"),
  );
  deepStrictEqual(Array.from(run.get("1")!.scores), [
    Infinity,
    -Infinity,
    Infinity,
    Infinity,
    1000,
    0.5,
    3,
    -16,
  ]);
  throws(
    () => parseTrecRun("1 Q0 a 1 0.5 x\n1 Q0 b 2 nan x\n", "r.txt"),
    /^DataFormatError: r.txt:2: score 'nan' is NaN/,
  );
  throws(() => parseTrecRun("1 Q0 a 1 -NaN x\n", "r.txt"), /r.txt:1: score '-NaN' is NaN/);
  // What atof would cut short or Number() would read in another radix is not a number here.
  for (const bad of ["1.5x", "0b1", "0o7", "1e", "--1", "inff", "1,5"]) {
    throws(
      () => parseTrecRun(`1 Q0 a 1 ${bad} x\n`, "r.txt"),
      new RegExp(`r.txt:1: score '${bad}' is not a number`),
    );
  }
});

Deno.test("qrels relevance: integers only, as atol would read them", () => {
  deepStrictEqual(
    parseTrecQrels("1 0 a 1.0\n1 0 b +2\n1 0 c -1\n").get("1"),
    new Map([
      ["a", 1],
      ["b", 2],
      ["c", -1],
    ]),
  );
  for (const bad of ["0x1", "1e1", "1.5", "inf"]) {
    throws(
      () => parseTrecQrels(`1 0 a ${bad}\n`, "q.txt"),
      new RegExp(`q.txt:1: relevance '${bad}' is not an integer`),
    );
  }
});

Deno.test("lines mixing tab and space separators in their columns are errors, not guesses", () => {
  // By tabs: docno 'doc 7', score 0.5. By whitespace: docno 'doc', score 1.
  throws(
    () => parseTrecRun("1\tQ0\tdoc 7\t1\t0.5\trun\n", "r.txt"),
    /^DataFormatError: r.txt:1: line mixes tab and space separators: tab-separated field 3 'doc 7'/,
  );
  throws(
    () => parseTrecQrels("301\t0 DOC\t1\n", "q.txt"),
    /^DataFormatError: q.txt:1: line mixes tab and space separators: tab-separated field 2 '0 DOC'/,
  );
  // Spaces only after the columns that matter (run_id, rel) are fine, as are pure tabs.
  const { run, runId } = parseTrecRun("1\tQ0\ta\t1\t0.5\tmy run\n1\tQ0\tb\t2\t0.25\tx\n");
  deepStrictEqual(run.get("1")!.docIds, ["a", "b"]);
  strictEqual(runId, "x");
  strictEqual(parseTrecQrels("1\t0\td 1\n").get("1")!.get("d"), 1);
});

Deno.test("whitespace before the first field or after the last one is fine, tabs included", async () => {
  // Before: refused as "mixes tab and space separators" (a regression of the mixed-separator
  // check), though trec_eval reads these lines and no column is in doubt.
  const { run, runId } = parseTrecRun(
    "q1 Q0 d1 1 2.5 sys\t\n\tq1 Q0 d2 2 1.5 sys \t\nq1 Q0 d3 3 0.5\tsys\n",
    "r.txt",
  );
  deepStrictEqual(run.get("q1")!.docIds, ["d1", "d2", "d3"]);
  strictEqual(runId, "sys");
  // A tab only after the leading columns (before run_id or an ignored seventh field) is fine.
  deepStrictEqual(parseTrecRun("q1 Q0 d1 1 2.5 sys\textra\n").run.get("q1")!.docIds, ["d1"]);
  const q = parseTrecQrels("q1 0 d1 1\t\n \tq1 0 d2 0\t \nq2\t0\td1\t2 \n", "q.txt");
  deepStrictEqual([...q.get("q1")!], [["d1", 1], ["d2", 0]]);
  strictEqual(q.get("q2")!.get("d1"), 2);
  // Tabs mixed with spaces between the leading columns are still refused.
  throws(() => parseTrecRun("q1 Q0\td1 1 2.5 sys\n", "r.txt"), /r.txt:1: line mixes tab/);
  throws(() => parseTrecQrels("q1 0\td1 1\n", "q.txt"), /q.txt:1: line mixes tab/);
  // The file readers agree.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/run`, "q1 Q0 d1 1 2.5 sys\t\n");
    deepStrictEqual((await readTrecRun(`${dir}/run`)).run.get("q1")!.docIds, ["d1"]);
    await Deno.writeTextFile(`${dir}/qrels`, "q1 0 d1 1\t\n");
    strictEqual((await readTrecQrels(`${dir}/qrels`)).get("q1")!.get("d1"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("invalid UTF-8 in a run or qrels is an error at its line, not a merged id", async () => {
  // Before: 'd\xff' and 'd\xfe' both read as 'd\uFFFD', one document judged twice or silently
  // the same document in a run.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(
      `${dir}/run`,
      Uint8Array.from(
        "q1 Q0 d1 1 3 s\nq1 Q0 d\xff 2 2 s\nq1 Q0 d\xfe 3 1 s\n",
        (c) => c.charCodeAt(0),
      ),
    );
    await rejects(
      readTrecRun(`${dir}/run`),
      new RegExp(`^DataFormatError: ${dir}/run:2: invalid UTF-8`),
    );
    await Deno.writeFile(
      `${dir}/qrels`,
      Uint8Array.from("q1 0 d\xff 1\nq1 0 d\xfe 0\n", (c) => c.charCodeAt(0)),
    );
    await rejects(
      readTrecQrels(`${dir}/qrels`),
      new RegExp(`^DataFormatError: ${dir}/qrels:1: invalid UTF-8`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

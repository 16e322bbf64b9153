// deno task teacher: scores exactly the triples deno task train draws from the same data flags
// (so a Margin-MSE run finds every triple's scores), refuses bad flags before loading anything,
// and leaves an existing --out untouched when it fails.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readTeacherScores } from "../src/losses/margin_mse.ts";
import { runScript, tinyBeir, withTempDir } from "./helpers.ts";

Deno.test("a teacher file scores every triple the trainer draws with the same data flags", async () => {
  await withTempDir(async (dir) => {
    const data = await tinyBeir(`${dir}/beir`);
    const flags = ["--data", data, "--negatives", "bm25", "--negatives-per-positive", "2"];
    const flagsVal = [...flags, "--val-queries", "1", "--seed", "3"];
    const t = await runScript("teacher", ...[
      "--teacher",
      "encoder:use-lite",
      "--out",
      `${dir}/teacher.jsonl`,
      "--quiet",
      ...flagsVal,
    ]);
    strictEqual(t.code, 0, t.stderr);
    const scores = await readTeacherScores(`${dir}/teacher.jsonl`);
    // 4 train queries, one carved for validation: 3 pairs x 2 negatives.
    deepStrictEqual(scores.rows.length, 6);
    for (const r of scores.rows) ok(Math.abs(r.scorePos) <= 1 && Math.abs(r.scoreNeg) <= 1);
    const tr = await runScript("train", ...[
      "--loss",
      "margin-mse",
      "--teacher",
      `${dir}/teacher.jsonl`,
      "--out",
      `${dir}/run`,
      "--max-steps",
      "1",
      "--batch-size",
      "2",
      "--quiet",
      ...flagsVal,
    ]);
    strictEqual(tr.code, 0, tr.stderr);
    // Another seed draws other triples: the trainer refuses the file, naming a missing triple.
    const other = await runScript("train", ...[
      "--loss",
      "margin-mse",
      "--teacher",
      `${dir}/teacher.jsonl`,
      "--out",
      `${dir}/run2`,
      "--max-steps",
      "1",
      "--batch-size",
      "2",
      "--quiet",
      ...flags,
      "--val-queries",
      "1",
      "--seed",
      "4",
    ]);
    strictEqual(other.code, 2, other.stderr);
    ok(/no teacher score for triple/.test(other.stderr), other.stderr);
  });
});

Deno.test("teacher: bad flags are one line before anything loads; --out is left as it was", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/teacher.jsonl`;
    await Deno.writeTextFile(out, "keep me\n");
    const cases: [string[], RegExp][] = [
      [["--teacher", "oracle:x"], /--teacher takes encoder:MODEL or cross-encoder:DIR/],
      [["--teacher", "cross-encoder:/nonexistent"], /no such file/],
      [
        ["--teacher", "encoder:use-lite", "--batch-size", "0"],
        /--batch-size must be a positive integer/,
      ],
      [["--teacher", "encoder:use-lite", "--data", `${dir}/nowhere`], /nowhere/],
    ];
    for (const [flags, pattern] of cases) {
      const r = await runScript("teacher", ...["--out", out, ...flags]);
      const last = r.stderr.trim().split("\n").pop() ?? "";
      ok(r.code !== 0, `${flags.join(" ")} exited 0`);
      ok(/^teacher: /.test(last) && pattern.test(last), `${flags.join(" ")}: ${r.stderr}`);
      ok(!r.stderr.includes("    at "), r.stderr);
      deepStrictEqual(await Deno.readTextFile(out), "keep me\n");
    }
  });
});

// The bad-input suite (issue 9, "Nothing lost, nothing silently wrong"). For every file format
// the project reads, malformed files generated from a valid seed must give either the right
// answer or a clear error that names the file (and `FILE:LINE: ` for line formats, the field
// for config files). A seeded mutator adds a few dozen random mutants per format, each of which
// must parse to a well-formed value or fail the same clean way: an Error naming the file, never
// a TypeError/RangeError/SyntaxError from deep inside, never a hang. And the CLIs that write
// (encode, eval, train) must refuse bad input with a one-line `script: message` on stderr (no
// stack trace), exit non-zero, and leave every output that existed before byte-for-byte as it
// was.
//
// Formats covered: TREC runs; TREC qrels (also through the auto-detecting readQrels and MS
// MARCO's qrels reader); BEIR corpus, queries and qrels; MS MARCO collection/queries TSV, run
// and id triples; negatives files (`qid pos neg`, and deno task mine's JSON lines); teacher files (TSV and JSONL); texts JSONL
// (encode's input); safetensors (header size, header JSON, dtypes, shapes, data_offsets) and
// sharded indexes; model directories (config.json, tokenizer.json, tokenizer_config.json,
// weights against the config); study specs (src/study/spec.ts: field-named errors, and mutants
// of a valid spec).
//
// To add a line format: in tests/bad_input/formats.ts, write a `Format` (a valid `seed`, its
// normalised `seedValue`, `readers` that return plain values, a `wellFormed` check for mutants,
// and `cases`) and add it to FORMATS; this file then runs its cases, the standard variants
// generated from the seed (CRLF, BOM, blank lines, no final newline) and the mutants.
// Expectations: `{ line: N }` (the message contains `FILE:N: `), `{ error: /re/ }` (the message
// names the file and matches), `{ value }` (the right answer, by deepStrictEqual), or
// `{ anyOf: [...] }` where more than one answer is right. Generators (mutator, raw bytes,
// safetensors writer, tiny tokenizer, snapshots) live in tests/bad_input/gen.ts.

import { deepStrictEqual, fail, ok } from "node:assert/strict";
import { readModelWeights } from "../src/models/safetensors.ts";
import { readStudySpec } from "../src/study/spec.ts";
import {
  BERT,
  type Case,
  entry,
  type Expect,
  type Format,
  FORMATS,
  loadSummary,
  MODEL_CASES,
  plainTensors,
  readTensors,
  SAFETENSORS_CASES,
  safetensorsSeed,
  wellFormedModel,
  wellFormedTensors,
  writeModelDir,
} from "./bad_input/formats.ts";
import {
  Mutator,
  safetensorsBytes,
  safetensorsHeaderRange,
  snapshot,
  tinyTokenizerJson,
  utf8,
} from "./bad_input/gen.ts";
import { tinyBeir, withTempDir } from "./helpers.ts";

// ---- the case runner ---------------------------------------------------------------------------

/** Why an error is not a clean, user-facing one naming `names`; null when it is. */
function uncleanError(e: unknown, names: string): string | null {
  if (!(e instanceof Error)) return `threw a non-Error: ${String(e)}`;
  if (
    e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError ||
    e instanceof ReferenceError
  ) {
    return `${e.name} from deep inside: ${e.stack}`;
  }
  if (!e.message.includes(names)) return `the message does not name ${names}: ${e.message}`;
  return null;
}

/** Reads with `read` and checks the outcome against `expect`; `names` must appear in errors. */
async function expectOutcome(
  read: () => Promise<unknown>,
  expect: Expect,
  names: string,
  label: string,
): Promise<void> {
  if ("anyOf" in expect) {
    const misses: string[] = [];
    for (const alternative of expect.anyOf) {
      try {
        return await expectOutcome(read, alternative, names, label);
      } catch (e) {
        misses.push((e as Error).message);
      }
    }
    fail(`${label}: none of the right outcomes:\n  ${misses.join("\n  ")}`);
  }
  let value: unknown;
  try {
    value = await read();
  } catch (e) {
    if ("value" in expect) fail(`${label}: expected a value, got ${(e as Error)?.stack ?? e}`);
    const problem = uncleanError(e, names);
    if (problem) fail(`${label}: ${problem}`);
    const msg = (e as Error).message;
    if ("line" in expect) {
      ok(msg.includes(`${names}:${expect.line}: `), `${label}: not at line ${expect.line}: ${msg}`);
      if (expect.match) ok(expect.match.test(msg), `${label}: ${msg} !~ ${expect.match}`);
    } else ok(expect.error.test(msg), `${label}: ${msg} !~ ${expect.error}`);
    return;
  }
  if (!("value" in expect)) fail(`${label}: expected an error, got ${Deno.inspect(value)}`);
  deepStrictEqual(value, expect.value, `${label}: wrong value`);
}

function bytesOf(content: string | Uint8Array): Uint8Array {
  return typeof content === "string" ? utf8(content) : content;
}

/** CRLF, BOM, blank lines and a missing final newline must all read like the seed. */
function standardCases(f: Format): Case[] {
  const expect = { value: f.seedValue };
  return [
    { name: "CRLF line endings read like LF", content: f.seed.replaceAll("\n", "\r\n"), expect },
    { name: "a UTF-8 byte order mark is skipped", content: "\uFEFF" + f.seed, expect },
    {
      name: "blank lines are skipped",
      content: "\n" + f.seed.replaceAll("\n", "\n\n"),
      expect,
    },
    { name: "no newline after the last line", content: f.seed.replace(/\n$/, ""), expect },
  ];
}

/** A stable small seed from a string, for the mutator. */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Mutants per format. */
const MUTANTS = 40;

/**
 * Reads each mutant with each reader: it must give a well-formed value or a clean error naming
 * the file, within two seconds. Returns the failures (empty when all is well).
 */
async function fuzz(
  bytes: Uint8Array,
  seed: number,
  count: number,
  pathFor: (i: number) => string,
  readers: Record<string, (path: string) => Promise<unknown>>,
  wellFormed: (v: unknown) => void,
  region?: [number, number],
  namesFor: (path: string) => string = (path) => path,
): Promise<string[]> {
  const failures: string[] = [];
  for (const [i, m] of new Mutator(seed).mutants(bytes, count, region).entries()) {
    const path = pathFor(i);
    await Deno.writeFile(path, m.bytes);
    for (const [name, read] of Object.entries(readers)) {
      const t0 = performance.now();
      let value: unknown, threw = false;
      try {
        value = await read(path);
      } catch (e) {
        threw = true;
        const problem = uncleanError(e, namesFor(path));
        if (problem) failures.push(`mutant ${i} (${m.ops}), ${name}: ${problem}`);
      }
      if (!threw) {
        try {
          wellFormed(value);
        } catch (e) {
          failures.push(
            `mutant ${i} (${m.ops}), ${name}: parsed to a malformed value (${
              (e as Error).message
            }): ${Deno.inspect(value).slice(0, 300)}`,
          );
        }
      }
      const ms = performance.now() - t0;
      if (ms > 2000) failures.push(`mutant ${i} (${m.ops}), ${name}: took ${ms.toFixed(0)} ms`);
    }
  }
  return failures;
}

for (const f of FORMATS) {
  const cases = [
    { name: "the seed reads right", content: f.seed, expect: { value: f.seedValue } },
    ...standardCases(f),
    ...f.cases,
  ];
  Deno.test(`${f.name}: ${cases.length} malformed files give FILE:LINE errors or the right value`, async (t) => {
    await withTempDir(async (dir) => {
      for (const [i, c] of cases.entries()) {
        await t.step(c.name, async () => {
          for (const [reader, read] of Object.entries(f.readers)) {
            const path = `${dir}/${i}_${reader}_${f.file}`;
            await Deno.writeFile(path, bytesOf(c.content));
            await expectOutcome(() => read(path), c.expect, path, `${reader}: ${c.name}`);
          }
        });
      }
    });
  });

  Deno.test(`${f.name}: ${MUTANTS} seeded mutants parse well-formed or fail naming the file`, async () => {
    await withTempDir(async (dir) => {
      const failures = await fuzz(
        utf8(f.seed),
        seedOf(f.name),
        MUTANTS,
        (i) => `${dir}/m${i}_${f.file}`,
        f.readers,
        f.wellFormed,
      );
      ok(failures.length === 0, `${failures.length} failures:\n${failures.join("\n")}`);
    });
  });
}

Deno.test(`safetensors: ${SAFETENSORS_CASES.length} malformed headers are refused naming the file`, async (t) => {
  await withTempDir(async (dir) => {
    for (const [i, c] of SAFETENSORS_CASES.entries()) {
      await t.step(c.name, async () => {
        const path = `${dir}/${i}.safetensors`;
        await Deno.writeFile(path, bytesOf(c.content));
        await expectOutcome(() => readTensors(path), c.expect, path, c.name);
      });
    }
  });
});

Deno.test(`safetensors: ${MUTANTS} seeded header mutants parse well-formed or fail naming the file`, async () => {
  await withTempDir(async (dir) => {
    const seed = safetensorsSeed();
    const failures = await fuzz(
      seed,
      seedOf("safetensors"),
      MUTANTS,
      (i) => `${dir}/m${i}.safetensors`,
      { readSafetensors: readTensors },
      wellFormedTensors,
      safetensorsHeaderRange(seed),
    );
    ok(failures.length === 0, `${failures.length} failures:\n${failures.join("\n")}`);
  });
});

Deno.test("sharded safetensors index: broken index or shards are named", async (t) => {
  await withTempDir(async (dir) => {
    const shard = safetensorsBytes({ w: entry("F32", [1], [0, 4]) }, new Uint8Array(4));
    const cases: { name: string; index: string; expect: Expect; names: string }[] = [
      {
        name: "a valid index reads its shards",
        index: JSON.stringify({ weight_map: { w: "a.safetensors" } }),
        expect: { value: { w: { shape: [1], data: [0] } } },
        names: "",
      },
      {
        name: "an index that is not JSON",
        index: "{weight_map",
        expect: { error: /index/ },
        names: "model.safetensors.index.json",
      },
      {
        name: "an index without weight_map",
        index: JSON.stringify({ metadata: {} }),
        expect: { error: /weight_map/ },
        names: "model.safetensors.index.json",
      },
      {
        name: "an index naming a missing shard",
        index: JSON.stringify({ weight_map: { w: "missing.safetensors" } }),
        expect: { error: /missing\.safetensors/ },
        names: "missing.safetensors",
      },
      {
        name: "an index listing a tensor the shards lack",
        index: JSON.stringify({ weight_map: { w: "a.safetensors", v: "a.safetensors" } }),
        expect: { error: /\bv\b/ },
        names: "model.safetensors.index.json",
      },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.name, async () => {
        const d = `${dir}/${i}`;
        await Deno.mkdir(d);
        await Deno.writeFile(`${d}/a.safetensors`, shard);
        await Deno.writeTextFile(`${d}/model.safetensors.index.json`, c.index);
        await expectOutcome(
          async () => plainTensors(await readModelWeights(d)),
          c.expect,
          c.names ? `${d}/${c.names}` : d,
          c.name,
        );
      });
    }
  });
});

Deno.test(`model directories: ${MODEL_CASES.length} bad config/tokenizer/weights are named`, async (t) => {
  await withTempDir(async (dir) => {
    for (const [i, c] of MODEL_CASES.entries()) {
      await t.step(c.name, async () => {
        const d = `${dir}/m${i}`;
        await writeModelDir(d, c);
        const expect: Expect = "value" in c.expect
          ? { value: c.expect.value }
          : { error: c.expect.error };
        const names = "file" in c.expect && c.expect.file ? `${d}/${c.expect.file}` : d;
        await expectOutcome(() => loadSummary(d), expect, names, c.name);
      });
    }
  });
});

Deno.test("model directories: seeded mutants of config.json, tokenizer.json and the weights header load well-formed or fail naming the directory", async () => {
  await withTempDir(async (dir) => {
    const failures: string[] = [];
    const config = utf8(await Deno.readTextFile(`${BERT}config.json`));
    const tokenizer = utf8(JSON.stringify(tinyTokenizerJson(), null, 1));
    const weights = await Deno.readFile(`${BERT}model.safetensors`);
    const targets: [string, Uint8Array, number, [number, number] | undefined][] = [
      ["config.json", config, 24, undefined],
      ["tokenizer.json", tokenizer, 12, undefined],
      ["model.safetensors", weights, 16, safetensorsHeaderRange(weights)],
    ];
    const dirOf = (path: string) => path.slice(0, path.lastIndexOf("/"));
    for (const [file, seed, count, region] of targets) {
      const pathFor = (i: number) => {
        const d = `${dir}/${file}_${i}`;
        Deno.mkdirSync(d, { recursive: true });
        return `${d}/${file}`;
      };
      const readers = {
        loadEncoder: async (path: string) => {
          // The mutant is written first; build the rest of the directory around it.
          const bytes = await Deno.readFile(path);
          await writeModelDir(dirOf(path), {});
          await Deno.writeFile(path, bytes);
          return await loadSummary(dirOf(path));
        },
      };
      failures.push(
        ...await fuzz(seed, seedOf(file), count, pathFor, readers, wellFormedModel, region, dirOf),
      );
    }
    ok(failures.length === 0, `${failures.length} failures:\n${failures.join("\n")}`);
  });
});

// ---- the CLIs that write: bad input refused, outputs untouched -----------------------------------

/** Runs `scripts/<script>.ts` with the arguments; stderr without Mesa's XDG_RUNTIME_DIR noise. */
async function cli(script: string, ...args: string[]): Promise<{ code: number; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `scripts/${script}.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const err = new TextDecoder().decode(r.stderr).split("\n")
    .filter((l) => !/XDG_RUNTIME_DIR/.test(l)).join("\n");
  return { code: r.code, err };
}

/**
 * Asserts a refusal: non-zero exit, no stack trace, and a last stderr line
 * `script: message` that contains every string of `mentions`.
 */
function assertRefused(
  r: { code: number; err: string },
  script: string,
  mentions: string[],
  label: string,
): void {
  ok(r.code !== 0, `${label}: exit code 0\n${r.err}`);
  ok(
    !/^\s+at /m.test(r.err) && !/Uncaught/.test(r.err),
    `${label}: a stack trace on stderr:\n${r.err}`,
  );
  const lines = r.err.split("\n").filter((l) => l.trim() !== "");
  const last = lines.at(-1) ?? "";
  ok(
    last.startsWith(`${script}: `),
    `${label}: last stderr line is not '${script}: ...':\n${r.err}`,
  );
  for (const m of mentions) ok(last.includes(m), `${label}: '${m}' not in: ${last}`);
}

/** Asserts that every path's snapshot is unchanged. */
async function assertUnchanged(before: Record<string, Record<string, string>>, label: string) {
  for (const [path, snap] of Object.entries(before)) {
    deepStrictEqual(await snapshot(path), snap, `${label}: ${path} changed`);
  }
}

async function snapshots(...paths: string[]): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const p of paths) out[p] = await snapshot(p);
  return out;
}

Deno.test("encode CLI: bad input, bad model or bad output path leave existing outputs untouched", async (t) => {
  await withTempDir(async (dir) => {
    const good = `${dir}/in.jsonl`;
    await Deno.writeTextFile(good, `{"id": "a", "text": "what does a cell encode"}\n`);
    const out = `${dir}/out.jsonl`, npy = `${dir}/out.npy`, ids = `${dir}/out.ids.json`;
    await Deno.writeTextFile(out, "previous output\n");
    await Deno.writeFile(npy, utf8("previous npy"));
    await Deno.writeTextFile(ids, `["previous"]\n`);

    await t.step("malformed input: FILE:LINE, output untouched", async () => {
      const bad = `${dir}/bad.jsonl`;
      await Deno.writeTextFile(bad, `{"id": "a", "text": "x"}\n{"id": "b", "text": 3}\n`);
      const before = await snapshots(out);
      const r = await cli("encode", "--input", bad, "--out", out);
      assertRefused(r, "encode", [`${bad}:2: `], "bad input");
      await assertUnchanged(before, "bad input");
    });

    await t.step("config.json without hidden_size: named, .npy and ids untouched", async () => {
      const model = `${dir}/model`;
      await writeModelDir(model, { config: (c) => ({ ...c, hidden_size: undefined }) });
      const before = await snapshots(npy, ids);
      const r = await cli("encode", "--model", model, "--input", good, "--out", npy);
      assertRefused(r, "encode", [`${model}/config.json`, "hidden_size"], "bad config");
      await assertUnchanged(before, "bad config");
    });

    await t.step("--batch-size 0: usage error, output untouched", async () => {
      const before = await snapshots(out);
      const r = await cli("encode", "--input", good, "--out", out, "--batch-size", "0");
      assertRefused(r, "encode", ["--batch-size"], "--batch-size 0");
      await assertUnchanged(before, "--batch-size 0");
    });

    await t.step("--ids in a missing directory: refused, the .npy untouched", async () => {
      const before = await snapshots(npy, ids);
      const badIds = `${dir}/no/such/dir/ids.json`;
      const r = await cli("encode", "--input", good, "--out", npy, "--ids", badIds);
      assertRefused(r, "encode", [badIds], "--ids in a missing directory");
      await assertUnchanged(before, "--ids in a missing directory");
    });

    await t.step("--out in a missing directory: one-line error naming it", async () => {
      const badOut = `${dir}/no/such/dir/out.jsonl`;
      const r = await cli("encode", "--input", good, "--out", badOut);
      assertRefused(r, "encode", [badOut], "--out in a missing directory");
    });

    await t.step("--out equal to --input: refused, the input untouched", async () => {
      const before = await snapshots(good);
      const r = await cli("encode", "--input", good, "--out", good);
      assertRefused(r, "encode", [good], "--out equal to --input");
      await assertUnchanged(before, "--out equal to --input");
    });
  });
});

Deno.test("eval CLI: bad qrels, runs or corpora are named and never overwrite --out", async (t) => {
  await withTempDir(async (dir) => {
    const data = await tinyBeir(`${dir}/tiny`);
    const out = `${dir}/prev.run`;
    await Deno.writeTextFile(out, "q1 Q0 d1 1 1 previous\n");
    const qrels = `${dir}/qrels.txt`, run = `${dir}/run.txt`;
    await Deno.writeTextFile(qrels, "q1 0 d1 1\nq2 0 d2 1\n");

    await t.step("bad qrels line: FILE:LINE on one line", async () => {
      const bad = `${dir}/bad_qrels.txt`;
      await Deno.writeTextFile(bad, "q1 0 d1 1\nq1 0 d2 1\nq2 0 d3 x\n");
      await Deno.writeTextFile(run, "q1 Q0 d1 1 1 r\n");
      const r = await cli("eval", "--qrels", bad, "--run", run, "--json");
      assertRefused(r, "eval", [`${bad}:3: `], "bad qrels");
    });

    await t.step("'inf' scores are read as trec_eval reads them", async () => {
      await Deno.writeTextFile(run, "q1 Q0 d1 1 inf r\nq1 Q0 d2 2 -inf r\nq2 Q0 d2 1 0 r\n");
      const r = await cli("eval", "--qrels", qrels, "--run", run, "--json");
      ok(r.code === 0, `exit ${r.code}: ${r.err}`);
    });

    await t.step("--bm25 with bad --qrels: named, --out untouched", async () => {
      const bad = `${dir}/bad_qrels2.txt`;
      await Deno.writeTextFile(bad, "q1 0 d1 1\nq2 0 d2\n");
      const before = await snapshots(out);
      const r = await cli("eval", "--bm25", "--data", data, "--qrels", bad, "--out", out);
      assertRefused(r, "eval", [`${bad}:2: `], "--bm25 with bad qrels");
      await assertUnchanged(before, "--bm25 with bad qrels");
    });

    await t.step("--bm25 on a corpus with a bad line: named, --out untouched", async () => {
      const badData = await tinyBeir(`${dir}/bad_tiny`, [
        `{"_id": "d1", "text": "a"}`,
        `{"_id": "d2", "text": "b"}`,
        `{"_id": "d3", "text": }`,
      ]);
      const before = await snapshots(out);
      const r = await cli("eval", "--bm25", "--data", badData, "--out", out);
      assertRefused(r, "eval", [`${badData}/corpus.jsonl:3: `], "--bm25 with a bad corpus");
      await assertUnchanged(before, "--bm25 with a bad corpus");
    });

    await t.step("--model --rerank with a bad run: named, --out untouched", async () => {
      const bad = `${dir}/bad_candidates.run`;
      await Deno.writeTextFile(bad, "q1 Q0 d1 1 2 r\nq1 Q0 d2 2\n");
      const before = await snapshots(out);
      const r = await cli(
        "eval",
        "--model",
        "use-lite",
        "--data",
        data,
        "--rerank",
        bad,
        "--no-cache",
        "--out",
        out,
      );
      assertRefused(r, "eval", [`${bad}:2: `], "--rerank with a bad run");
      await assertUnchanged(before, "--rerank with a bad run");
    });
  });
});

Deno.test("train CLI: bad teacher, negatives or corpus are named and --out is left as it was", async (t) => {
  await withTempDir(async (dir) => {
    const data = await tinyBeir(`${dir}/tiny`);
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/notes.txt`, "the user's own file\n");
    const common = ["--negatives", "random", "--val-queries", "0", "--max-steps", "1", "--quiet"];

    await t.step("a bad teacher line: FILE:LINE, nothing written", async () => {
      const teacher = `${dir}/teacher.tsv`;
      await Deno.writeTextFile(teacher, "9.5\t3\tq1\td1\td5\n8\tabc\tq2\td2\td5\n");
      const before = await snapshots(out);
      const r = await cli(
        "train",
        "--data",
        data,
        ...common,
        "--loss",
        "margin-mse",
        "--teacher",
        teacher,
        "--out",
        out,
      );
      assertRefused(r, "train", [`${teacher}:2: `], "bad teacher");
      await assertUnchanged(before, "bad teacher");
    });

    await t.step("a bad negatives line: FILE:LINE, nothing written", async () => {
      const negatives = `${dir}/negatives.tsv`;
      await Deno.writeTextFile(negatives, "q1 d1 d5\nq2 d2\n");
      const before = await snapshots(out);
      const r = await cli(
        "train",
        "--data",
        data,
        ...common.slice(2),
        "--negatives",
        negatives,
        "--out",
        out,
      );
      assertRefused(r, "train", [`${negatives}:2: `], "bad negatives");
      await assertUnchanged(before, "bad negatives");
    });

    await t.step("a bad corpus line: FILE:LINE, nothing written", async () => {
      const badData = await tinyBeir(`${dir}/bad_tiny`, [
        `{"_id": "d1", "text": "a"}`,
        `{"_id": "d1", "text": "b"}`,
      ]);
      const before = await snapshots(out);
      const r = await cli("train", "--data", badData, ...common, "--out", out);
      assertRefused(r, "train", [`${badData}/corpus.jsonl:2: `], "bad corpus");
      await assertUnchanged(before, "bad corpus");
    });

    await t.step("--out holding a run, without --resume: refused, the run untouched", async () => {
      const prev = `${dir}/prev_run`;
      await Deno.mkdir(`${prev}/last`, { recursive: true });
      await Deno.writeTextFile(`${prev}/args.json`, `{"args": ["previous"]}\n`);
      await Deno.writeTextFile(`${prev}/log.jsonl`, `{"step": 1}\n`);
      await Deno.writeTextFile(`${prev}/last/state.json`, `{"step": 1}\n`);
      const before = await snapshots(prev);
      const r = await cli("train", "--data", data, ...common, "--out", prev);
      assertRefused(r, "train", [prev, "--resume"], "existing run");
      await assertUnchanged(before, "existing run");
    });
  });
});

// ---- study specs -------------------------------------------------------------------------------

const STUDY_SEED = {
  dataset: "scifact",
  seeds: [1, 2],
  budgets: [0.25, 1],
  teachers: { t: { kind: "encoder", model: "use-lite" } },
  arms: [
    { name: "mse", kind: "margin-mse", teacher: "t" },
    { name: "dist", kind: "margin", target: "distributed" },
    { name: "sweep", kind: "static-sweep", margins: [0.1, 0.2] },
  ],
};

Deno.test("study specs: bad files are one error naming the file and the field", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/study.json`;
    const cases: [string | Uint8Array, RegExp][] = [
      ["", /study\.json: \(file\): not valid JSON/],
      ["{", /study\.json: \(file\): not valid JSON/],
      [new Uint8Array([0x7b, 0xff, 0x7d]), /study\.json: \(file\): .*invalid UTF-8/],
      ["[]", /study\.json: \(top level\): expected an object/],
      [JSON.stringify({ ...STUDY_SEED, seeds: [] }), /study\.json: seeds: must not be empty/],
      [JSON.stringify({ ...STUDY_SEED, budgets: [2] }), /study\.json: budgets\[0\]/],
      [
        JSON.stringify({ ...STUDY_SEED, arms: [{ name: "x", kind: "magic" }] }),
        /study\.json: arms\[0\]\.kind: unknown arm kind "magic"/,
      ],
      [
        JSON.stringify({ ...STUDY_SEED, teachers: {} }),
        /study\.json: arms\[0\]\.teacher: no teacher named "t"/,
      ],
    ];
    for (const [content, pattern] of cases) {
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      try {
        await readStudySpec(path);
        fail(`accepted ${String(content).slice(0, 40)}`);
      } catch (e) {
        const problem = uncleanError(e, path);
        if (problem) fail(problem);
        ok(pattern.test((e as Error).message), `${(e as Error).message} !~ ${pattern}`);
      }
    }
    await Deno.writeTextFile(path, JSON.stringify(STUDY_SEED));
    deepStrictEqual((await readStudySpec(path)).arms.length, 3);
  });
});

Deno.test("study specs: seeded mutants parse to a checked spec or fail naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/study.json`;
    const seed = utf8(JSON.stringify(STUDY_SEED, null, 1));
    for (const m of new Mutator(11).mutants(seed, 60)) {
      await Deno.writeFile(path, m.bytes);
      try {
        const spec = await readStudySpec(path);
        ok(spec.seeds.length > 0 && spec.arms.length > 0, `mutant ${m.ops}: an empty spec`);
        ok(spec.budgets.every((b) => b > 0 && b <= 1), `mutant ${m.ops}: budgets ${spec.budgets}`);
      } catch (e) {
        const problem = uncleanError(e, path);
        if (problem) fail(`mutant ${m.ops}: ${problem}`);
      }
    }
  });
});

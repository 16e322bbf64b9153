// `deno task encode` (scripts/encode.ts) end to end on a tiny JSONL: ids and dims of the JSONL
// output, embeddings bit-exact equal to encodeTexts' (same batching), the .npy round trip with
// the header parsed here independently, errors naming file and line, --help; every flag checked
// before anything loads; nothing lost (a NaN embedding or Ctrl-C leaves --out as it was); plus
// the library's encode(), the writer's replace-on-close, and the float32 printing.
import { assertBitEqual } from "./helpers.ts";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { cachedEncoder, encode } from "../src/api/encode.ts";
import {
  EmbeddingsWriter,
  NonFiniteEmbeddingError,
  npyHeader,
  shortestFloat32,
} from "../src/cli/embeddings_out.ts";
import { joinTitle, readTextsJsonl } from "../src/cli/texts_jsonl.ts";
import { DataFormatError } from "../src/data/types.ts";
import { getGpu } from "../src/gpu/device.ts";
import { encodeTexts } from "../src/models/encode.ts";
import { loadEncoder } from "../src/models/load.ts";

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/encode.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  // Mesa's Vulkan driver complains on stderr when XDG_RUNTIME_DIR is unset; not the CLI's output.
  const err = dec.decode(r.stderr).split("\n").filter((l) => !/XDG_RUNTIME_DIR/.test(l)).join("\n");
  return { code: r.code, out: dec.decode(r.stdout), err };
}

const RECORDS = [
  `{"id": "q1", "text": "What does BRCA1 encode?"}`,
  `{"_id": 42, "title": "BRCA1", "text": "The BRCA1 gene encodes a nuclear phosphoprotein."}`,
  ``, // blank lines are skipped
  `{"_id": "d2", "title": "", "text": "  An empty title: BEIR joins and strips.  "}`,
  `{"id": "e", "text": ""}`,
  `{"id": "long", "text": "${
    "Proteins fold into structures determined by sequence. ".repeat(30)
  }"}`,
];
const IDS = ["q1", "42", "d2", "e", "long"];
const TEXTS = [
  "What does BRCA1 encode?",
  "BRCA1 The BRCA1 gene encodes a nuclear phosphoprotein.",
  "An empty title: BEIR joins and strips.",
  "",
  "Proteins fold into structures determined by sequence. ".repeat(30),
];

/** The rows encodeTexts gives with the CLI's defaults (batch 64, USE-lite, 128 tokens). */
async function expected(): Promise<{ data: Float32Array; dim: number; truncated: number }> {
  const gpu = await getGpu();
  const model = await loadEncoder(gpu, "use-lite");
  return await encodeTexts(gpu, model, TEXTS, { batchSize: 64 });
}

/** Parses a .npy file written as float32 little-endian C order, version 1.0 (numpy's spec). */
function parseNpy(bytes: Uint8Array): { shape: number[]; data: Float32Array; offset: number } {
  deepStrictEqual([...bytes.subarray(0, 6)], [0x93, 78, 85, 77, 80, 89]); // \x93NUMPY
  deepStrictEqual([bytes[6], bytes[7]], [1, 0]);
  const headerLen = bytes[8] | (bytes[9] << 8);
  const offset = 10 + headerLen;
  strictEqual(offset % 64, 0, "data aligned to 64 bytes");
  const header = new TextDecoder().decode(bytes.subarray(10, offset));
  ok(header.endsWith("\n"), "header ends with a newline");
  const m = /^\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n$/.exec(
    header,
  );
  ok(m, `unexpected header ${JSON.stringify(header)}`);
  const shape = [Number(m[1]), Number(m[2])];
  const body = bytes.slice(offset);
  strictEqual(body.byteLength, shape[0] * shape[1] * 4);
  return { shape, data: new Float32Array(body.buffer), offset };
}

Deno.test("encode CLI: JSONL out has the ids in order and embeddings bit-exact to encodeTexts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.jsonl`, RECORDS.join("\n") + "\n");
    const r = await cli("--input", `${dir}/in.jsonl`, "--out", `${dir}/out.jsonl`);
    strictEqual(r.code, 0, r.err);
    strictEqual(r.out, "", "nothing on stdout");
    ok(/texts\/s/.test(r.err) && /tokens\/s/.test(r.err), r.err);
    ok(/1 of 5 texts truncated at 128 tokens/.test(r.err), r.err);

    const lines = (await Deno.readTextFile(`${dir}/out.jsonl`)).trimEnd().split("\n");
    const rows = lines.map((l) => JSON.parse(l) as { id: string; embedding: number[] });
    deepStrictEqual(rows.map((x) => x.id), IDS);
    for (const row of rows) deepStrictEqual(Object.keys(row), ["id", "embedding"]);
    const want = await expected();
    strictEqual(want.dim, 512);
    strictEqual(want.truncated, 1);
    rows.forEach((row, i) => {
      strictEqual(row.embedding.length, 512);
      const got = Float32Array.from(row.embedding);
      const ref = want.data.subarray(i * 512, (i + 1) * 512);
      for (let j = 0; j < 512; j++) {
        if (!Object.is(got[j], ref[j])) {
          throw new Error(`${row.id}[${j}]: ${got[j]} != ${ref[j]} (not bit-exact)`);
        }
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encode CLI: .npy round trip (header, float32 rows) with ids beside it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/in.jsonl`, RECORDS.join("\n"));
    // Old files at the output paths are replaced, and no temporary file is left.
    await Deno.writeTextFile(`${dir}/vec.npy`, "old");
    await Deno.writeTextFile(`${dir}/vec.ids.json`, `["old"]\n`);
    const r = await cli(
      "--input",
      `${dir}/in.jsonl`,
      "--out",
      `${dir}/vec.npy`,
      "--batch-size",
      "2",
    );
    strictEqual(r.code, 0, r.err);
    deepStrictEqual(await names(dir), ["in.jsonl", "vec.ids.json", "vec.npy"]);
    const { shape, data } = parseNpy(await Deno.readFile(`${dir}/vec.npy`));
    deepStrictEqual(shape, [5, 512]);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${dir}/vec.ids.json`)), IDS);
    const gpu = await getGpu();
    const model = await loadEncoder(gpu, "use-lite");
    const want = await encodeTexts(gpu, model, TEXTS, { batchSize: 2 });
    assertBitEqual(data, want.data, "npy embeddings");

    // --ids with .txt: one id per line.
    const r2 = await cli(
      "--input",
      `${dir}/in.jsonl`,
      "--out",
      `${dir}/v2.npy`,
      "--ids",
      `${dir}/v2.txt`,
      "--quiet",
    );
    strictEqual(r2.code, 0, r2.err);
    strictEqual(r2.err, "");
    strictEqual(await Deno.readTextFile(`${dir}/v2.txt`), IDS.join("\n") + "\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encode CLI: malformed input stops with FILE:LINE and what is wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, RegExp][] = [
      [`{"id": "a", "text": "x"}\n\n{"id": "b" "text": "y"}\n`, /:3: invalid JSON/],
      [`{"id": "a", "text": "x"}\n{"id": "b", "text": 3}\n`, /:2: "text" must be a string/],
      [`{"text": "x"}\n`, /:1: missing "id" \(or BEIR "_id"\)/],
      [`{"id": "a", "body": "x"}\n`, /:1: missing "text"/],
      [`[1, 2]\n`, /:1: expected a JSON object/],
      [
        `{"id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n`,
        /:2: duplicate id "a" \(first on line 1\)/,
      ],
      [`{"id": "a", "title": 5, "text": "x"}\n`, /:1: "title" must be a string/],
    ];
    for (const [i, [content, pattern]] of cases.entries()) {
      const file = `${dir}/bad${i}.jsonl`;
      await Deno.writeTextFile(file, content);
      const r = await cli("--input", file, "--out", `${dir}/o.jsonl`);
      strictEqual(r.code, 2, `case ${i}: ${r.err}`);
      ok(r.err.includes(`${file}:`), `case ${i} names the file: ${r.err}`);
      ok(pattern.test(r.err), `case ${i}: ${r.err}`);
    }
    const missing = await cli("--input", `${dir}/nope.jsonl`, "--out", `${dir}/o.jsonl`);
    strictEqual(missing.code, 2);
    ok(missing.err.includes(`${dir}/nope.jsonl: no such file (--input)`), missing.err);
    const noOut = await cli("--input", `${dir}/bad0.jsonl`);
    strictEqual(noOut.code, 2);
    ok(/--out FILE is required/.test(noOut.err), noOut.err);
    const help = await cli("--help");
    strictEqual(help.code, 0);
    ok(help.out.includes("--max-length") && help.out.includes(".npy"), help.out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The names in a directory, sorted. */
async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/**
 * Every file of a directory (not recursive) with its content (small files) or its size and an
 * FNV-1a hash of its bytes, to compare before and after.
 */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await names(dir)) {
    if (!(await Deno.stat(`${dir}/${name}`)).isFile) {
      out.set(name, "<dir>");
      continue;
    }
    const bytes = await Deno.readFile(`${dir}/${name}`);
    let h = 0x811c9dc5;
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    out.set(name, bytes.length <= 64 ? [...bytes].join(",") : `${bytes.length} bytes, ${h}`);
  }
  return out;
}

Deno.test("encode CLI: every flag is checked before anything loads: one line, exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Malformed input: had the texts been read before the flags were checked, the error would
    // be "in.jsonl:1: invalid JSON" instead.
    const input = `${dir}/in.jsonl`;
    await Deno.writeTextFile(input, "not json\n");
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(`${dir}/old.jsonl`, "old\n");
    const before = await snapshot(dir);
    const io = ["--input", input, "--out", `${dir}/old.jsonl`];
    const cases: [string[], string][] = [
      [[...io, "--max-length", "0"], "--max-length must be a positive integer (got 0)"],
      [[...io, "--max-length=-3"], "--max-length must be a positive integer (got -3)"],
      [[...io, "--batch-size", "1.5"], "--batch-size must be a positive integer (got 1.5)"],
      [[...io, "--max-tokens", "1e3"], "--max-tokens must be a positive integer (got 1e3)"],
      [
        [...io, "--model", "nope"],
        "--model 'nope' is neither 'use-lite', an existing model directory, nor a Hub name (org/model)",
      ],
      [[...io, "--model", `${dir}/nope`], `${dir}/nope: no such model directory (--model)`],
      [[...io, "--field", ""], "--field needs a field name"],
      [
        ["--input", input, "--out", `${dir}/missing/o.jsonl`],
        `${dir}/missing: no such directory (--out ${dir}/missing/o.jsonl)`,
      ],
      [
        ["--input", input, "--out", `${dir}/old.jsonl/o.jsonl`],
        `${dir}/old.jsonl: not a directory (--out ${dir}/old.jsonl/o.jsonl)`,
      ],
      [["--input", input, "--out", `${dir}/sub`], `${dir}/sub: is a directory, not a file (--out)`],
      [
        ["--input", input, "--out", input],
        `--out ${input} is the --input file; it would be overwritten`,
      ],
      [
        [...io, "--ids", `${dir}/ids.json`],
        `--ids applies to .npy output only (${dir}/old.jsonl is written as JSON Lines)`,
      ],
      [
        ["--input", input, "--out", `${dir}/v.npy`, "--ids", `${dir}/ids.csv`],
        `--ids must end in .json (a JSON array) or .txt (one id per line) (got ${dir}/ids.csv)`,
      ],
      [
        ["--input", input, "--out", `${dir}/v.npy`, "--ids", `${dir}/missing/ids.json`],
        `${dir}/missing: no such directory (--ids ${dir}/missing/ids.json)`,
      ],
      [
        ["--input", `${dir}/nope.jsonl`, "--out", `${dir}/o.jsonl`],
        `${dir}/nope.jsonl: no such file (--input)`,
      ],
      [
        ["--input", `${dir}/sub`, "--out", `${dir}/o.jsonl`],
        `${dir}/sub: is a directory, not a file (--input)`,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    results.forEach((r, i) => {
      const [args, message] = cases[i];
      strictEqual(r.code, 2, `${args.join(" ")}: ${r.err}`);
      strictEqual(r.err.trim(), `encode: ${message}`, args.join(" "));
    });
    deepStrictEqual(await snapshot(dir), before, "nothing written, no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A copy of the tiny BERT test fixture with every weight NaN, so that every embedding it gives is
 * NaN.
 */
async function nanModel(dir: string): Promise<string> {
  const src = new URL("./fixtures/hf_parity/bert/", import.meta.url);
  const data = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
  const model = `${dir}/nan-model`;
  await Deno.mkdir(model);
  await Deno.copyFile(new URL("config.json", src), `${model}/config.json`);
  // The MiniLM tokenizer cut to the fixture's 512 ids: [CLS] 101 and [SEP] 102 stay.
  const tok = JSON.parse(
    await Deno.readTextFile(`${data}/../models/minilm-l6-tokenizer/tokenizer.json`),
  );
  tok.model.vocab = Object.fromEntries(
    Object.entries(tok.model.vocab as Record<string, number>).filter(([, id]) => id < 512),
  );
  await Deno.writeTextFile(`${model}/tokenizer.json`, JSON.stringify(tok));
  const st = await Deno.readFile(new URL("model.safetensors", src));
  const view = new DataView(st.buffer);
  // safetensors: u64 header length, JSON header, then the (all float32) tensor data.
  for (let o = 8 + Number(view.getBigUint64(0, true)); o + 4 <= st.length; o += 4) {
    view.setUint32(o, 0x7fc00000, true); // a float32 NaN
  }
  await Deno.writeFile(`${model}/model.safetensors`, st);
  return model;
}

Deno.test("encode CLI: a NaN embedding fails (.npy too) and the old output stays as it was", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const model = await nanModel(dir);
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    const input = `${dir}/in.jsonl`;
    await Deno.writeTextFile(input, `{"id": "a", "text": ""}\n{"id": "b", "text": ""}\n`);
    await Deno.writeTextFile(`${out}/old.jsonl`, `{"id":"x","embedding":[1]}\n`);
    await Deno.writeFile(`${out}/old.npy`, new Uint8Array([0x93, 1, 2, 3]));
    await Deno.writeTextFile(`${out}/old.ids.json`, `["x"]\n`);
    await Deno.writeTextFile(`${out}/ids.txt`, "x\n");
    const before = await snapshot(out);
    const runs: string[][] = [
      ["--out", `${out}/old.jsonl`],
      ["--out", `${out}/old.npy`],
      ["--out", `${out}/new.npy`, "--ids", `${out}/ids.txt`], // and no new.npy appears
    ];
    for (const args of runs) {
      const r = await cli("--model", model, "--input", input, ...args, "--quiet");
      strictEqual(r.code, 1, `${args.join(" ")}: ${r.err}`);
      strictEqual(
        r.err.trim(),
        `encode: the embedding of text "a" (row 0) has a non-finite value at dimension 0: NaN; ` +
          `nothing was written (${args[1]} is as it was)`,
      );
      deepStrictEqual(await snapshot(out), before, `${args.join(" ")}: files as they were`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encode CLI: Ctrl-C while encoding leaves --out as it was, no temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/in.jsonl`;
    const lines = Array.from(
      { length: 2000 },
      (_, i) => JSON.stringify({ id: `t${i}`, text: `Text ${i} about proteins and cells.` }),
    );
    await Deno.writeTextFile(input, lines.join("\n"));
    await Deno.writeTextFile(`${dir}/out.jsonl`, "old\n");
    const before = await snapshot(dir);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/encode.ts", "--input", input, "--out", `${dir}/out.jsonl`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "";
    // The model is loaded once its line is printed; the temporary output appears next.
    while (!err.includes("loaded in")) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    const hasTmp = async () => (await names(dir)).some((n) => n.includes(".tmp-"));
    while (!exited && !(await hasTmp())) await new Promise((r) => setTimeout(r, 5));
    ok(!exited, `finished before it could be interrupted: ${err}`);
    child.kill("SIGINT");
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    strictEqual((await status).code, 130, err);
    ok(err.includes(`encode: interrupted; nothing was written (${dir}/out.jsonl is as it was)`));
    deepStrictEqual(await snapshot(dir), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("EmbeddingsWriter replaces the files only at close; abort leaves the old ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dim = 2;
    await Deno.writeTextFile(`${dir}/v.npy`, "old npy");
    await Deno.writeTextFile(`${dir}/v.ids.json`, "old ids");
    await Deno.writeTextFile(`${dir}/v.jsonl`, "old jsonl");
    const before = await snapshot(dir);
    // A non-finite value is refused in .npy as in JSONL, naming the id and the row.
    for (const path of [`${dir}/v.npy`, `${dir}/v.jsonl`]) {
      const w = await EmbeddingsWriter.open(path, 3, dim);
      await w.write(["a"], new Float32Array([1, 2]));
      deepStrictEqual(await snapshot(dir).then((m) => m.get("v.npy")), before.get("v.npy"));
      await rejects(w.write(["b", "c"], new Float32Array([3, 4, 5, Infinity])), (e) => {
        ok(e instanceof NonFiniteEmbeddingError);
        strictEqual(
          e.message,
          `the embedding of text "c" (row 2) has a non-finite value at dimension 1: Infinity`,
        );
        return true;
      });
      await w.abort();
      deepStrictEqual(await snapshot(dir), before, path);
    }
    // Too few rows for the .npy header: an error at close, and the old files stay.
    const short = await EmbeddingsWriter.open(`${dir}/v.npy`, 3, dim);
    await short.write(["a"], new Float32Array([1, 2]));
    await rejects(short.close(), /1 rows written, the header says 3/);
    await short.abort();
    deepStrictEqual(await snapshot(dir), before);
    // Success replaces both files.
    const w = await EmbeddingsWriter.open(`${dir}/v.npy`, 2, dim);
    await w.write(["a", "b"], new Float32Array([1, 2, 3, 4]));
    deepStrictEqual(await w.close(), [`${dir}/v.npy`, `${dir}/v.ids.json`]);
    deepStrictEqual(await names(dir), ["v.ids.json", "v.jsonl", "v.npy"]);
    strictEqual(await Deno.readTextFile(`${dir}/v.ids.json`), `["a","b"]\n`);
    strictEqual((await Deno.readFile(`${dir}/v.npy`)).length, 128 + 16);
    // An unreadable input names the file.
    await rejects(readTextsJsonl(dir), (e) => {
      ok(e instanceof DataFormatError);
      strictEqual(e.message, `${dir}: cannot read the input (it is a directory)`);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encode(): library call equals encodeTexts and reuses the loaded model", async () => {
  const want = await expected();
  const a = await encode(TEXTS);
  strictEqual(a.dim, 512);
  strictEqual(a.truncated, 1);
  strictEqual(a.embeddings.length, TEXTS.length);
  a.embeddings.forEach((row, i) => {
    assertBitEqual(row, want.data.subarray(i * 512, (i + 1) * 512), `row ${i}`);
  });
  const b = await encode(["What does BRCA1 encode?"], { model: "use-lite", maxLength: 4 });
  strictEqual(b.truncated, 1);
  strictEqual(b.tokens, 4);
  strictEqual(await cachedEncoder("use-lite"), await cachedEncoder("use-lite"));
});

Deno.test("shortestFloat32 reads back to the same float32; npy header is 64-byte aligned", () => {
  let s = 12345;
  for (let i = 0; i < 20000; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = Math.fround((s / 4294967296 - 0.5) * 10 ** ((i % 13) - 6));
    const x = shortestFloat32(v);
    strictEqual(Math.fround(Number(JSON.stringify(x))), v);
  }
  strictEqual(shortestFloat32(Math.fround(0.1)), 0.1);
  strictEqual(shortestFloat32(-0), -0);
  for (const shape of [[0, 512], [5, 512], [123456789, 4096]]) {
    const h = npyHeader(shape);
    strictEqual(h.length % 64, 0);
    strictEqual(h[h.length - 1], 10);
  }
  strictEqual(joinTitle("T", "body"), "T body");
  strictEqual(joinTitle(undefined, " body "), " body ");
});

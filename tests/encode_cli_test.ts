// `deno task encode` (scripts/encode.ts) end to end on a tiny JSONL: ids and dims of the JSONL
// output, embeddings bit-exact equal to encodeTexts' (same batching), the .npy round trip with
// the header parsed here independently, errors naming file and line, --help; plus the library's
// encode() and the float32 printing the JSONL output relies on.
import { assertBitEqual } from "./helpers.ts";
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { cachedEncoder, encode } from "../src/api/encode.ts";
import { npyHeader, shortestFloat32 } from "../src/cli/embeddings_out.ts";
import { joinTitle } from "../src/cli/texts_jsonl.ts";
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
    const r = await cli(
      "--input",
      `${dir}/in.jsonl`,
      "--out",
      `${dir}/vec.npy`,
      "--batch-size",
      "2",
    );
    strictEqual(r.code, 0, r.err);
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
    ok(missing.err.includes(`${dir}/nope.jsonl: cannot read the input`), missing.err);
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

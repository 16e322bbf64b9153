// Line reading (src/data/lines.ts): invalid UTF-8 is an error at its line, never a silent
// U+FFFD that would merge distinct ids (`d\xff` and `d\xfe` both read as `d\uFFFD` before); the
// lines before it are still yielded in order; BOM, CRLF, a missing final newline and lines
// longer than the read buffer behave as before; numeric JSON ids must be safe integers.
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  decodeUtf8,
  invalidUtf8Offset,
  type Line,
  numericJsonId,
  readLines,
  readTextFileStrict,
} from "../src/data/lines.ts";
import { DataFormatError } from "../src/data/types.ts";
import { Rng } from "../src/util/rng.ts";

/** Bytes of a string taken one char code per byte (for deliberately invalid UTF-8). */
function raw(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

async function withBytes<T>(bytes: Uint8Array, f: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await Deno.writeFile(path, bytes);
    return await f(path);
  } finally {
    await Deno.remove(path);
  }
}

/** The lines read before the error, and the error (or null). */
async function readAll(path: string): Promise<{ lines: [number, string][]; error: Error | null }> {
  const lines: [number, string][] = [];
  try {
    for await (const l of readLines(path)) lines.push([l.lineNo, l.text]);
  } catch (e) {
    return { lines, error: e as Error };
  }
  return { lines, error: null };
}

Deno.test("readLines: invalid UTF-8 is an error at its line, after the lines before it", async () => {
  // Before: both ids read as 'd\uFFFD', silently the same document.
  await withBytes(raw("q1 0 d\xff 1\nq1 0 d\xfe 0\n"), async (path) => {
    const { lines, error } = await readAll(path);
    deepStrictEqual(lines, []);
    ok(error instanceof DataFormatError, String(error));
    strictEqual(error.line, 1);
    ok(error.message.startsWith(`${path}:1: invalid UTF-8 (byte 0xff at byte 7 of the line`));
  });
  await withBytes(raw("a\r\nb\n\ncaf\xe9\nd\n"), async (path) => {
    const { lines, error } = await readAll(path);
    deepStrictEqual(lines, [[1, "a"], [2, "b"], [3, ""]]);
    ok(error?.message.startsWith(`${path}:4: invalid UTF-8 (byte 0xe9 at byte 4 `));
  });
  // In the last line without a newline; a sequence cut short; an encoded surrogate; overlong.
  for (
    const [bytes, line] of [
      ["ok\nlast\xc3", 2],
      ["\xe2\x82\n", 1],
      ["x\n\xed\xa0\x80\n", 2],
      ["\xc0\xaf\n", 1],
      ["\xf4\x90\x80\x80\n", 1],
    ] as const
  ) {
    await withBytes(raw(bytes), async (path) => {
      const { error } = await readAll(path);
      ok(error?.message.startsWith(`${path}:${line}: invalid UTF-8`), `${bytes}: ${error}`);
    });
  }
});

Deno.test("readLines: BOM, CRLF, no final newline and multi-byte text read as before", async () => {
  const text = "\uFEFFcaf\u00e9 \u{1F600}\r\n\r\nna\u00efve\nlast";
  await withBytes(new TextEncoder().encode(text), async (path) => {
    deepStrictEqual((await readAll(path)).lines, [
      [1, "caf\u00e9 \u{1F600}"],
      [2, ""],
      [3, "na\u00efve"],
      [4, "last"],
    ]);
  });
  // A BOM is skipped at the start of the file only (U+FEFF inside a line is text).
  await withBytes(new TextEncoder().encode("a\n\uFEFFb\n"), async (path) => {
    deepStrictEqual((await readAll(path)).lines, [[1, "a"], [2, "\uFEFFb"]]);
  });
  await withBytes(new Uint8Array(0), async (path) => {
    deepStrictEqual(await readAll(path), { lines: [], error: null });
  });
});

Deno.test("readLines: lines longer than the read buffer, and an invalid byte far into one", async () => {
  // 3.5 MB: a short line, then one line over three 1 MiB reads, multi-byte characters on the
  // chunk boundaries.
  const long = "\u00e9".repeat(1_700_000); // 3.4 MB of two-byte characters
  const bytes = new TextEncoder().encode(`short\n${long}\nend`);
  await withBytes(bytes, async (path) => {
    const lines: Line[] = [];
    for await (const l of readLines(path)) lines.push(l);
    deepStrictEqual(lines.map((l) => [l.lineNo, l.text.length]), [[1, 5], [2, 1_700_000], [3, 3]]);
    ok(lines[1].text === long);
  });
  const bad = bytes.slice();
  bad[6 + 3_000_001] = 0x41; // the second byte of a two-byte character: a lone lead byte
  await withBytes(bad, async (path) => {
    const { lines, error } = await readAll(path);
    deepStrictEqual(lines, [[1, "short"]]);
    ok(error?.message.startsWith(`${path}:2: invalid UTF-8 (byte 0xc3 at byte 3000001 `));
  });
});

Deno.test("invalidUtf8Offset agrees with a fatal TextDecoder on random bytes", () => {
  const rng = new Rng(9);
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const pool = [0x41, 0x0a, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef];
  pool.push(0xf0, 0xf4, 0xf5, 0xff);
  for (let trial = 0; trial < 3000; trial++) {
    const bytes = Uint8Array.from(
      { length: 1 + Math.floor(rng.next() * 8) },
      () => pool[Math.floor(rng.next() * pool.length)],
    );
    let valid = true;
    try {
      fatal.decode(bytes);
    } catch {
      valid = false;
    }
    const at = invalidUtf8Offset(bytes);
    strictEqual(at < 0, valid, `${bytes}`);
    if (at >= 0) {
      // Everything before the offset is valid.
      fatal.decode(bytes.subarray(0, at));
    }
  }
});

Deno.test("decodeUtf8 and readTextFileStrict: invalid UTF-8 named at its line, BOM dropped", async () => {
  strictEqual(decodeUtf8(raw("\xef\xbb\xbf{}"), "t.json"), "{}");
  throws(
    () => decodeUtf8(raw('{\n"a": "\xff"\n}'), "t.json"),
    (e: Error) =>
      e instanceof DataFormatError && e.message.startsWith("t.json:2: invalid UTF-8 (byte 0xff"),
  );
  await withBytes(raw('{"vocab": {"d\xff": 1}}'), async (path) => {
    await rejects(readTextFileStrict(path), new RegExp(`^DataFormatError: ${path}:1: invalid`));
  });
});

Deno.test("numericJsonId: safe integers as text; beyond 2^53 or fractional refused", () => {
  strictEqual(numericJsonId("c.jsonl", 3, "_id", 42), "42");
  strictEqual(numericJsonId("c.jsonl", 3, "_id", -7), "-7");
  strictEqual(numericJsonId("c.jsonl", 3, "_id", 2 ** 53 - 1), "9007199254740991");
  // JSON.parse reads 12345678901234567890 as 12345678901234567000: refused, never rounded.
  const big = JSON.parse("12345678901234567890") as number;
  throws(
    () => numericJsonId("c.jsonl", 3, "_id", big),
    /^DataFormatError: c.jsonl:3: numeric "_id" is beyond 2\^53 - 1.*write the id as a JSON string/,
  );
  throws(() => numericJsonId("t.jsonl", 1, "qid", 1.5), /t.jsonl:1: numeric "qid" is not an int/);
});

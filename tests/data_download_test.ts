// BEIR download: checksum verified, unpacked atomically into the cache; offline gives one clear
// error. A local server on 127.0.0.1 stands in for BEIR's host (tests contact no outside host).
import { createHash } from "node:crypto";
import { deepStrictEqual, match, rejects } from "node:assert/strict";
import { zipSync } from "npm:fflate@0.8.3";
import { downloadBeir, resolveOrDownload } from "../src/data/download.ts";

const enc = new TextEncoder();

function tinyZip(): Uint8Array {
  return zipSync({
    "tiny/corpus.jsonl": enc.encode('{"_id": "d1", "title": "T", "text": "x"}\n'),
    "tiny/queries.jsonl": enc.encode('{"_id": "q1", "text": "y"}\n'),
    "tiny/qrels/test.tsv": enc.encode("query-id\tcorpus-id\tscore\nq1\td1\t1\n"),
  });
}

async function withServer(body: Uint8Array, fn: (base: string) => Promise<void>) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/tiny.zip"
        ? new Response(body as Uint8Array<ArrayBuffer>)
        : new Response("no", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("a downloaded BEIR zip is checksum-verified and unpacked into the cache", async () => {
  const zip = tinyZip();
  const md5 = createHash("md5").update(zip).digest("hex");
  const into = await Deno.makeTempDir();
  try {
    await withServer(zip, async (baseUrl) => {
      const dir = await downloadBeir("tiny", { baseUrl, md5, into });
      deepStrictEqual(dir, `${into}/tiny`);
      match(await Deno.readTextFile(`${dir}/qrels/test.tsv`), /q1\td1\t1/);
      await rejects(
        downloadBeir("tiny", { baseUrl, md5: "0".repeat(32), into: `${into}/other` }),
        /MD5 [0-9a-f]{32} does not match the published 0{32}; not unpacked/,
      );
    });
  } finally {
    await Deno.remove(into, { recursive: true });
  }
});

Deno.test("offline without data: one error that says how to provide the dataset", async () => {
  const into = await Deno.makeTempDir();
  try {
    await rejects(
      resolveOrDownload("tiny", {
        baseUrl: "http://127.0.0.1:9", // discard port: nothing listens
        md5: "0".repeat(32),
        into,
        env: () => undefined,
      }),
      (e: Error) => {
        // "tiny" has no published checksum, so resolution's own error is what the user sees.
        match(e.message, /dataset 'tiny' not found/);
        match(e.message, /--data DIR/);
        return true;
      },
    );
    await rejects(
      downloadBeir("tiny", { baseUrl: "http://127.0.0.1:9", md5: "0".repeat(32), into }),
      /cannot download http:\/\/127\.0\.0\.1:9\/tiny\.zip .*Offline\? Provide the dataset with --data DIR/,
    );
  } finally {
    await Deno.remove(into, { recursive: true });
  }
});

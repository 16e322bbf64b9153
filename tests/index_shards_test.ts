// Index shards and the table, cheaply (synthetic shards written with the Parquet writer, a
// tiny BEIR corpus for the CLI): shards that disagree with the manifest, or with each other, are
// refused naming the shard file and both values; the table is built shard by shard (also at a
// --table-uri outside the index directory, recorded in index.json and overridable at search
// time); exact search streamed over shards equals exact search over the concatenated corpus,
// ties included; a rerun skips a finished shard without touching it; an s3:// --out is refused;
// resumed documents count toward progress but not toward the rate and ETA.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { formatProgress, ProgressBar } from "../src/cli/progress.ts";
import { retrievedRun, retrieveWithEmbeddings } from "../src/eval/dense.ts";
import { getGpu } from "../src/gpu/device.ts";
import {
  buildIndex,
  type IndexManifest,
  readManifest,
  searchIndex,
  writeManifest,
} from "../src/index/lance.ts";
import { writeEmbeddingParquet } from "../src/index/parquet.ts";
import { exactSearchShards } from "../src/index/retrieve.ts";
import { readShards, ShardMismatchError, shardPath, shardRange } from "../src/index/shards.ts";
import { runScript, tinyBeir, withTempDir } from "./helpers.ts";

/** Unit rows, seeded; rows listed in `copies` ([to, from]) duplicate an earlier row (ties). */
function vectors(n: number, dim: number, seed: number, copies: [number, number][] = []) {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  const data = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let norm = 0;
    for (let c = 0; c < dim; c++) norm += (data[r * dim + c] = rand()) ** 2;
    for (let c = 0; c < dim; c++) data[r * dim + c] /= Math.sqrt(norm);
  }
  for (const [to, from] of copies) data.copyWithin(to * dim, from * dim, (from + 1) * dim);
  return data;
}

/** A synthetic index of `n` documents in `shards` shards; `meta(i)` overrides shard i's tags. */
async function syntheticIndex(
  out: string,
  n: number,
  dim: number,
  shards: number,
  meta: (i: number) => Record<string, string> = () => ({}),
  copies: [number, number][] = [],
) {
  const data = vectors(n, dim, 7, copies);
  const ids = Array.from({ length: n }, (_, i) => `d${i}`);
  for (let i = 0; i < shards; i++) {
    const [a, b] = shardRange(n, i, shards);
    await Deno.mkdir(`${out}/shards`, { recursive: true });
    await writeEmbeddingParquet(shardPath(out, i, shards), {
      ids: ids.slice(a, b),
      dim,
      data: data.slice(a * dim, b * dim),
      meta: { model: "MANIFEST-ID", corpus: "CORPUS", shard: `${i + 1}/${shards}`, ...meta(i) },
    });
  }
  const m: IndexManifest = {
    version: 1,
    model: "synthetic",
    identity: "MANIFEST-ID",
    corpus: "CORPUS",
    documents: n,
    shards,
    maxLength: 0,
    queryMaxLength: 0,
    ann: null,
    search: null,
  };
  await writeManifest(out, m);
  return { ids, data };
}

Deno.test("progress: documents resumed from an earlier run count toward done, not toward the rate or ETA", () => {
  const base = { label: "shard 1/1", unit: "docs", width: 10 };
  // 600 of 1000 done, 500 of them resumed: 100 encoded here in 10 s is 10 docs/s, 400 left 0:40.
  strictEqual(
    formatProgress({ ...base, done: 600, skipped: 500, total: 1000, elapsed: 10 }),
    "shard 1/1 [######----] 600/1000 60.0% 10 docs/s ETA 0:40",
  );
  strictEqual(
    formatProgress({ ...base, done: 600, total: 1000, elapsed: 10 }),
    "shard 1/1 [######----] 600/1000 60.0% 60 docs/s ETA 0:07",
  );
  // Nothing encoded yet in this process: no rate, no ETA.
  strictEqual(
    formatProgress({ ...base, done: 500, skipped: 500, total: 1000, elapsed: 3 }),
    "shard 1/1 [#####-----] 500/1000 50.0% 0 docs/s ETA --:--",
  );
  let t = 0;
  const bar = new ProgressBar("shard 1/1", {
    total: 1000,
    unit: "docs",
    width: 10,
    silent: true,
    now: () => t,
  });
  bar.skipped = 500;
  bar.update(500);
  t = 20_000;
  bar.update(700);
  strictEqual(bar.line(), "shard 1/1 [#######---] 700/1000 70.0% 10 docs/s ETA 0:30");
});

Deno.test("buildIndex refuses shards whose identity or corpus differs from index.json's, naming the shard", async () => {
  await withTempDir(async (dir) => {
    // Every shard agrees with the others but not with the manifest.
    const out = `${dir}/ix`;
    await syntheticIndex(out, 10, 8, 2, () => ({ model: "OTHER" }));
    const err = await buildIndex(out).then(() => null, (e) => e);
    ok(err instanceof ShardMismatchError, String(err));
    const msg = (err as Error).message;
    ok(msg.includes(shardPath(out, 0, 2)), msg);
    ok(/encoder identity OTHER differs from .*index\.json's MANIFEST-ID/.test(msg), msg);
    ok(!(await Deno.stat(`${out}/lance`).catch(() => null)), "no table written");

    // Built, then the second shard replaced by one of another corpus: the rebuild is refused,
    // naming the second shard, and the half-replaced table is marked unbuilt.
    const out2 = `${dir}/ix2`;
    await syntheticIndex(out2, 10, 8, 2);
    const built = await buildIndex(out2);
    deepStrictEqual(built.ann, { kind: "none" });
    const other = (i: number): Record<string, string> => i === 1 ? { corpus: "ELSEWHERE" } : {};
    await syntheticIndex(out2, 10, 8, 2, other);
    await writeManifest(out2, built);
    await rejects(buildIndex(out2), (e: Error) => {
      ok(e instanceof ShardMismatchError, String(e));
      ok(e.message.includes(shardPath(out2, 1, 2)), e.message);
      ok(
        /corpus fingerprint ELSEWHERE differs from .*index\.json's CORPUS/.test(e.message),
        e.message,
      );
      return true;
    });
    strictEqual((await readManifest(out2))!.ann, null);
    const q = { count: 1, dim: 8, data: new Float32Array(8).fill(1) };
    await rejects(searchIndex(out2, q, ["q"]), /the index is not built/);
  });
});

Deno.test("readShards refuses a shard that disagrees with the first one, naming both values", async () => {
  await withTempDir(async (dir) => {
    await syntheticIndex(
      dir,
      9,
      4,
      3,
      (i): Record<string, string> => i === 2 ? { model: "STRANGER" } : {},
    );
    await rejects(readShards(dir, 3), (e: Error) => {
      ok(e instanceof ShardMismatchError, String(e));
      ok(e.message.startsWith(shardPath(dir, 2, 3)), e.message);
      ok(e.message.includes("identity STRANGER differs from"), e.message);
      ok(e.message.includes(`${shardPath(dir, 0, 3)}'s MANIFEST-ID`), e.message);
      return true;
    });
    // The first two alone agree.
    await Deno.remove(shardPath(dir, 2, 3));
    await rejects(readShards(dir, 3), /shard 3 of 3 is missing/);
  });
});

Deno.test("exact search streamed over shards equals exact search over the whole corpus, ties included", async () => {
  const gpu = await getGpu();
  await withTempDir(async (dir) => {
    const n = 203, dim = 16, shards = 4;
    // Duplicates across shard boundaries (rows 0-50, 50-101, 101-152, 152-203) and within one.
    const copies: [number, number][] = [[60, 3], [120, 3], [170, 3], [190, 55], [140, 55], [7, 5]];
    const { ids, data } = await syntheticIndex(dir, n, dim, shards, () => ({}), copies);
    const Q = 9;
    const queries = { count: Q, dim, data: vectors(Q, dim, 99) };
    // Queries equal to duplicated rows: their best scores tie across shards.
    queries.data.set(data.subarray(3 * dim, 4 * dim), 0);
    queries.data.set(data.subarray(55 * dim, 56 * dim), dim);
    const qids = Array.from({ length: Q }, (_, i) => `q${i}`);
    for (const k of [1, 5, 60, 203, 500]) {
      const want = retrievedRun(
        await retrieveWithEmbeddings(gpu, queries, { count: n, dim, data }, k),
        qids,
        (j) => ids[j],
      );
      const got = await exactSearchShards(gpu, dir, shards, queries, qids, k);
      for (const q of qids) {
        deepStrictEqual(got.get(q)!.docIds, want.get(q)!.docIds, `k ${k}, ${q}`);
        deepStrictEqual(got.get(q)!.scores, want.get(q)!.scores, `k ${k}, ${q}`);
      }
    }
    const top = exactSearchShards(gpu, dir, shards, queries, qids, 4);
    deepStrictEqual((await top).get("q0")!.docIds, ["d3", "d60", "d120", "d170"]);
  });
});

Deno.test("buildIndex streams shards into a table at a --table-uri outside the index; search finds it, or the override", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/ix`, elsewhere = `${dir}/tables/a`;
    const n = 50, dim = 8;
    const { data } = await syntheticIndex(out, n, dim, 3);
    // Batches of 7 rows: the table is created from the first and every other is added.
    const built = await buildIndex(out, { tableUri: elsewhere, batchRows: 7 });
    strictEqual(built.table, elsewhere);
    deepStrictEqual(built.ann, { kind: "none" });
    ok((await Deno.stat(`${elsewhere}/docs.lance`)).isDirectory);
    ok(!(await Deno.stat(`${out}/lance`).catch(() => null)), "nothing in INDEX/lance");
    const manifest = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
    strictEqual(manifest.table, elsewhere);

    const queries = { count: 2, dim, data: data.slice(0, 2 * dim) };
    queries.data.set(data.subarray(41 * dim, 42 * dim), dim);
    const run = await searchIndex(out, queries, ["a", "b"], { k: n });
    strictEqual(run.get("a")!.docIds[0], "d0");
    strictEqual(run.get("b")!.docIds[0], "d41");
    deepStrictEqual(new Set(run.get("a")!.docIds).size, n, "every row is in the table once");

    // The table moved: index.json's URI no longer opens, an override does.
    await Deno.rename(`${dir}/tables`, `${dir}/moved`);
    await rejects(
      searchIndex(out, queries, ["a", "b"], { k: 3 }),
      (e: Error) => e.message.startsWith(elsewhere) && /--table-uri/.test(e.message),
    );
    const moved = await searchIndex(out, queries, ["a", "b"], {
      k: 3,
      tableUri: `${dir}/moved/a`,
    });
    strictEqual(moved.get("b")!.docIds[0], "d41");
  });
});

Deno.test("deno task index: a rerun skips a finished shard untouched; --table-uri builds outside INDEX; an s3:// --out is refused", async () => {
  await withTempDir(async (dir) => {
    const beir = await tinyBeir(`${dir}/beir`);
    const index = `${dir}/ix`, tables = `${dir}/tables`;
    const s3 = await runScript("index", "--data", beir, "--out", "s3://bucket/ix");
    strictEqual(s3.code, 2, s3.stderr);
    ok(/--out must be a local .*--table-uri s3:\/\/bucket\/ix/.test(s3.stderr), s3.stderr);
    const evS3 = await runScript("eval", "--index", "s3://bucket/ix", "--data", beir);
    strictEqual(evS3.code, 2, evS3.stderr);
    ok(/--index must be the local .*--table-uri/.test(evS3.stderr), evS3.stderr);

    const common = ["--data", beir, "--out", index, "--max-length", "16"];
    const first = await runScript("index", ...common, "--shard", "1/2", "--quiet");
    strictEqual(first.code, 0, first.stderr);
    const path = shardPath(index, 0, 2);
    const before = await Deno.stat(path);
    const bytes = await Deno.readFile(path);
    const again = await runScript("index", ...common, "--shard", "1/2");
    strictEqual(again.code, 0, again.stderr);
    ok(/shard 1\/2: already encoded/.test(again.stderr), again.stderr);
    ok(!/documents encoded into/.test(again.stderr), again.stderr);
    const after = await Deno.stat(path);
    strictEqual(after.mtime?.getTime(), before.mtime?.getTime(), "the shard was not rewritten");
    deepStrictEqual(await Deno.readFile(path), bytes);

    const all = await runScript(
      "index",
      ...common,
      "--shards",
      "2",
      "--table-uri",
      tables,
      "--quiet",
    );
    strictEqual(all.code, 0, all.stderr);
    strictEqual(JSON.parse(all.stdout).table, tables);
    ok((await Deno.stat(`${tables}/docs.lance`)).isDirectory);
    ok(!(await Deno.stat(`${index}/lance`).catch(() => null)), "nothing in INDEX/lance");
    const ev = await runScript(
      "eval",
      "--index",
      index,
      "--data",
      beir,
      "--split",
      "train",
      "--exact",
      "--k",
      "8",
      "--json",
    );
    strictEqual(ev.code, 0, ev.stderr);
    const m = JSON.parse(ev.stdout);
    strictEqual(m.ndcg_cut_10, m.exact.ndcg_cut_10);
    strictEqual(m.num_q, 4);
  });
});

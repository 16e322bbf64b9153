// Sharded encoding into Parquet and a LanceDB index, on SciFact (the shared copy): two shards
// encoded by two `deno task index --shard` runs; a shard from another model refused before any
// work; a deleted, half-done shard resumed from its complete part (and equal to the original,
// bit for bit); `--build`; `deno task eval --index --exact`: ANN recall@100 >= 0.95 against the
// exact top-k at the default settings, nDCG@10 within 0.005 of exact retrieval. USE-lite at 16
// document tokens keeps the encoding short; the criterion is ANN against exact, not quality.
// Also: Parquet round trips, and mod.ts reaching LanceDB, Arrow and parquet-wasm only through
// dynamic imports.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readEmbeddingParquet, writeEmbeddingParquet } from "../src/index/parquet.ts";
import { annSettings, searchSettings } from "../src/index/lance.ts";
import { partPath, shardPath, shardRange } from "../src/index/shards.ts";
import { runScript, tinyBeir, withTempDir } from "./helpers.ts";

const data = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";

Deno.test("embedding Parquet files round-trip ids, float32 values and metadata exactly", async () => {
  await withTempDir(async (dir) => {
    const data = Float32Array.from({ length: 5 * 3 }, (_, i) => Math.fround(Math.sin(i) * 1e-3));
    data[4] = -0;
    data[7] = 3.4028234663852886e38;
    const rows = { ids: ["a", "b", "é", "d 4", ""], dim: 3, data, meta: { model: "m", x: "1" } };
    await writeEmbeddingParquet(`${dir}/x.parquet`, rows);
    const back = await readEmbeddingParquet(`${dir}/x.parquet`);
    deepStrictEqual(back.ids, rows.ids);
    deepStrictEqual(back.dim, 3);
    deepStrictEqual(new Uint32Array(back.data.buffer), new Uint32Array(data.buffer));
    deepStrictEqual(back.meta, rows.meta);
  });
});

Deno.test("shard ranges cover the corpus once; ANN and search defaults follow the corpus size", () => {
  for (const [count, n] of [[5183, 2], [10, 3], [2, 4]]) {
    let next = 0;
    for (let i = 0; i < n; i++) {
      const [a, b] = shardRange(count, i, n);
      strictEqual(a, next);
      next = b;
    }
    strictEqual(next, count);
  }
  deepStrictEqual(annSettings(1000, 512), { kind: "none" });
  deepStrictEqual(annSettings(5183, 512), { kind: "ivf_pq", partitions: 20, subVectors: 32 });
  deepStrictEqual(annSettings(8_841_823, 768), {
    kind: "ivf_pq",
    partitions: 2974,
    subVectors: 48,
  });
  deepStrictEqual(searchSettings({ kind: "ivf_pq", partitions: 20, subVectors: 32 }, 5183), {
    nprobes: 16,
    refineFactor: 10,
  });
  deepStrictEqual(
    searchSettings({ kind: "ivf_pq", partitions: 2974, subVectors: 48 }, 8_841_823, {
      refineFactor: 0,
    }),
    { nprobes: 64, refineFactor: 0 },
  );
  // 100,000 vectors in 316 partitions: half is 158, capped at 64 (13 would hold 4096 vectors).
  strictEqual(
    searchSettings({ kind: "ivf_pq", partitions: 316, subVectors: 24 }, 100_000).nprobes,
    64,
  );
  // 12 partitions of 1e6 vectors: half is 6, raised to the floor of 8.
  strictEqual(searchSettings({ kind: "ivf_pq", partitions: 12, subVectors: 24 }, 1e6).nprobes, 8);
});

Deno.test("mod.ts reaches LanceDB, Arrow and parquet-wasm only through dynamic imports", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const bySpec = new Map<
    string,
    { dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[] }
  >(
    info.modules.map((m: { specifier: string }) => [m.specifier, m]),
  );
  const redirects: Record<string, string> = info.redirects ?? {};
  const seen = new Set<string>();
  const stack = [info.roots[0]];
  while (stack.length) {
    const raw = stack.pop()!;
    const s = redirects[raw] ?? raw;
    if (!s || seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpec.get(s)?.dependencies ?? []) {
      if (!d.isDynamic && d.code?.specifier) stack.push(d.code.specifier);
    }
  }
  ok(seen.size > 20, `the static graph was walked (${seen.size} modules)`);
  for (const s of seen) {
    ok(!/lancedb|parquet-wasm|apache-arrow/.test(s), `statically imported: ${s}`);
  }
});

Deno.test("deno task index: two shards, a foreign shard refused, a deleted half-done shard resumed, ANN within reach of exact", async () => {
  await withTempDir(async (dir) => {
    const index = `${dir}/index`;
    const common = ["--data", `${data}/scifact`, "--out", index, "--max-length", "16", "--quiet"];
    const first = await runScript("index", ...common, "--shard", "1/2", "--part-size", "1000");
    strictEqual(first.code, 0, first.stderr);
    deepStrictEqual(JSON.parse(first.stdout).missing, [2]);

    // Another maximum length makes other embeddings: refused, in one line, before encoding.
    const foreign = await runScript("index", ...common, "--shard", "2/2", "--max-length", "24");
    strictEqual(foreign.code, 2, foreign.stderr);
    ok(
      /index\.json: this index was made with another identity, maxLength/.test(foreign.stderr),
      foreign.stderr,
    );
    ok(!foreign.stderr.includes("    at "), "one line, no stack");
    ok(!(await Deno.stat(shardPath(index, 1, 2)).catch(() => null)), "nothing written");

    const second = await runScript("index", ...common, "--shard", "2/2", "--part-size", "1000");
    strictEqual(second.code, 0, second.stderr);
    deepStrictEqual(JSON.parse(second.stdout).missing, []);
    const whole = await readEmbeddingParquet(shardPath(index, 1, 2));
    const [a, b] = shardRange(5183, 1, 2);
    strictEqual(whole.ids.length, b - a);

    // A crash mid-shard: the final file gone, its first two parts (documents a..a+2000) on disk.
    await Deno.remove(shardPath(index, 1, 2));
    const parts = [0, 1].map((j) => partPath(index, 1, 2, j));
    for (const [j, part] of parts.entries()) {
      await writeEmbeddingParquet(part, {
        ids: whole.ids.slice(1000 * j, 1000 * (j + 1)),
        dim: whole.dim,
        data: whole.data.slice(1000 * j * whole.dim, 1000 * (j + 1) * whole.dim),
        meta: { ...whole.meta, part: String(j), first: String(a + 1000 * j), count: "1000" },
      });
    }
    const resumed = await runScript(
      "index",
      ...common.filter((x) => x !== "--quiet"),
      "--shard",
      "2/2",
      "--part-size",
      "1000",
    );
    strictEqual(resumed.code, 0, resumed.stderr);
    ok(/resumed, 2 of 3 parts were already encoded/.test(resumed.stderr), resumed.stderr);
    const again = await readEmbeddingParquet(shardPath(index, 1, 2));
    deepStrictEqual(again.ids, whole.ids);
    deepStrictEqual(new Uint32Array(again.data.buffer), new Uint32Array(whole.data.buffer));
    for (const part of parts) {
      ok(!(await Deno.stat(part).catch(() => null)), "parts removed once the shard is whole");
    }

    const built = await runScript("index", "--out", index, "--build", "--quiet");
    strictEqual(built.code, 0, built.stderr);
    deepStrictEqual(JSON.parse(built.stdout).ann, {
      kind: "ivf_pq",
      partitions: 20,
      subVectors: 32,
    });

    const ev = await runScript(
      "eval",
      "--index",
      index,
      "--data",
      `${data}/scifact`,
      "--exact",
      "--json",
    );
    strictEqual(ev.code, 0, ev.stderr);
    const m = JSON.parse(ev.stdout);
    ok(m.ann_recall["100"] >= 0.95, `ANN recall@100 ${m.ann_recall["100"]}`);
    ok(
      Math.abs(m.ndcg_cut_10 - m.exact.ndcg_cut_10) <= 0.005,
      `nDCG@10 ${m.ndcg_cut_10} vs ${m.exact.ndcg_cut_10}`,
    );
    for (const k of ["10", "100", "1000"]) ok(m.ann_recall[k] > 0 && m.ann_recall[k] <= 1, k);
    strictEqual(m.num_q, 300);
    strictEqual(m.exact.num_q, 300);
  });
});

Deno.test("deno task index --shards N encodes every shard and builds in one process; a small corpus is searched exactly", async () => {
  await withTempDir(async (dir) => {
    const beir = await tinyBeir(`${dir}/beir`);
    const r = await runScript(
      "index",
      "--data",
      beir,
      "--out",
      `${dir}/ix`,
      "--shards",
      "3",
      "--quiet",
    );
    strictEqual(r.code, 0, r.stderr);
    deepStrictEqual(JSON.parse(r.stdout).ann, { kind: "none" });
    for (let i = 0; i < 3; i++) ok((await Deno.stat(shardPath(`${dir}/ix`, i, 3))).isFile);
    const ev = await runScript(
      "eval",
      "--index",
      `${dir}/ix`,
      "--data",
      beir,
      "--split",
      "train",
      "--exact",
      "--k",
      "5",
      "--json",
    );
    strictEqual(ev.code, 0, ev.stderr);
    const m = JSON.parse(ev.stdout);
    deepStrictEqual(m.ann_recall, {}, "k 5: no recall at 10 or more");
    strictEqual(m.ndcg_cut_10, m.exact.ndcg_cut_10);
    strictEqual(m.num_q, 4);
  });
});

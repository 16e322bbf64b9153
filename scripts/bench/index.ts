/**
 * The `index` benchmark section (`deno task bench --only index`):
 *
 * - encode: the first `--docs` (default 1000) SciFact documents encoded by USE-lite through the
 *   index's shard writer (`encodeShard`, 128 tokens, Parquet parts and the merged shard): docs/s.
 * - index: a synthetic corpus of 100,000 unit vectors of 384 dimensions, drawn around N/100
 *   random centres (so an IVF has structure to find), written as
 *   4 Parquet shards (docs/s), loaded into a LanceDB table and indexed with the default IVF-PQ
 *   (seconds each);
 * - search: 200 queries (perturbed corpus vectors) at k = 100 for nprobes 1, 2, 4, ... up to
 *   the partitions, refine factor 10 and 0: queries/s and ANN recall@10 and @100 against the
 *   exact top-k computed on the GPU: the recall curve to choose nprobes from.
 *
 * Result keys: `index: { encode: {...}, corpus, dim, shards, writeSeconds, docsPerSecondWrite,
 * buildSeconds (shards read, table written, IVF-PQ trained), ann, curve: [{ nprobes,
 * refineFactor, queriesPerSecond, recall10, recall100 }] }`. `SELFMARGIN_BENCH_INDEX_DOCS`
 * changes the synthetic corpus size.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { readBeirCorpus } from "../../src/data/beir.ts";
import { resolveDataset } from "../../src/data/resolve.ts";
import { retrievedRun, retrieveWithEmbeddings } from "../../src/eval/dense.ts";
import { mulberry32 } from "../../src/eval/stats.ts";
import { buildIndex, runOverlap, searchIndex, writeManifest } from "../../src/index/lance.ts";
import { writeEmbeddingParquet } from "../../src/index/parquet.ts";
import { encoderIdentity, encodeShard, shardPath, shardRange } from "../../src/index/shards.ts";
import { loadEncoder } from "../../src/models/load.ts";

function unitRows(
  n: number,
  dim: number,
  around: Float32Array | null,
  spread: number,
  seed: number,
) {
  const rand = mulberry32(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const out = new Float32Array(n * dim);
  const centres = around ? around.length / dim : 0;
  for (let i = 0; i < n; i++) {
    const c = centres ? Math.floor(rand() * centres) : -1;
    let s = 0;
    for (let d = 0; d < dim; d++) {
      const v = (c >= 0 ? around![c * dim + d] : 0) + spread * g();
      out[i * dim + d] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < dim; d++) out[i * dim + d] *= inv;
  }
  return out;
}

/** Runs the section (see the module doc). */
export async function indexSection(ctx: BenchContext): Promise<void> {
  const { gpu, log } = ctx;
  const out: Record<string, unknown> = {};
  ctx.result.index = out;
  const tmp = await Deno.makeTempDir({ prefix: "selfmargin-bench-index-" });
  try {
    // Encoding through the shard writer, on real texts.
    const dir = await resolveDataset("scifact", {});
    const corpus = (await readBeirCorpus(`${dir}/corpus.jsonl`)).slice(0, ctx.options.docs ?? 1000);
    const model = await loadEncoder(gpu, "use-lite", { maxLength: 128 });
    const identity = await encoderIdentity(model, 128);
    const t0 = performance.now();
    await encodeShard(gpu, model, corpus, { out: `${tmp}/real`, shard: 0, shards: 1, identity });
    const encodeSeconds = (performance.now() - t0) / 1000;
    out.encode = {
      model: "use-lite",
      documents: corpus.length,
      maxLength: 128,
      seconds: encodeSeconds,
      docsPerSecond: corpus.length / encodeSeconds,
    };
    log(
      `index: encode ${corpus.length} SciFact documents: ${
        (corpus.length / encodeSeconds).toFixed(1)
      } docs/s`,
    );

    // A synthetic corpus, sharded, tabled and indexed.
    const n = Number(Deno.env.get("SELFMARGIN_BENCH_INDEX_DOCS") ?? 100_000), dim = 384, shards = 4;
    const centres = unitRows(Math.max(1, Math.round(n / 100)), dim, null, 1, 7);
    const vectors = unitRows(n, dim, centres, 0.06, 11);
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    const syn = `${tmp}/synthetic`;
    await Deno.mkdir(`${syn}/shards`, { recursive: true });
    const t1 = performance.now();
    for (let i = 0; i < shards; i++) {
      const [a, b] = shardRange(n, i, shards);
      await writeEmbeddingParquet(shardPath(syn, i, shards), {
        ids: ids.slice(a, b),
        dim,
        data: vectors.subarray(a * dim, b * dim),
        meta: { model: "synthetic", corpus: "synthetic", shard: `${i + 1}/${shards}` },
      });
    }
    const writeSeconds = (performance.now() - t1) / 1000;
    await writeManifest(syn, {
      version: 1,
      model: "synthetic",
      identity: "synthetic",
      corpus: "synthetic",
      documents: n,
      shards,
      maxLength: 0,
      queryMaxLength: 0,
      ann: null,
      search: null,
    });
    const t2 = performance.now();
    const built = await buildIndex(syn, { log });
    const buildSeconds = (performance.now() - t2) / 1000;
    Object.assign(out, {
      corpus: n,
      dim,
      shards,
      writeSeconds,
      docsPerSecondWrite: n / writeSeconds,
      buildSeconds,
      ann: built.ann,
    });

    // Queries near corpus vectors; the exact top-100 on the GPU; the ANN curve over nprobes.
    const Q = 200, k = 100;
    const rand = mulberry32(5);
    const near = new Float32Array(Q * dim);
    for (let q = 0; q < Q; q++) {
      const r = Math.floor(rand() * n);
      near.set(vectors.subarray(r * dim, (r + 1) * dim), q * dim);
    }
    const queries = { count: Q, dim, data: unitRows(Q, dim, near, 0.05, 13) };
    const qids = Array.from({ length: Q }, (_, q) => `q${q}`);
    const top = await retrieveWithEmbeddings(gpu, queries, { count: n, dim, data: vectors }, k);
    const exact = retrievedRun(top, qids, (j) => ids[j]);
    const partitions = built.ann?.kind === "ivf_pq" ? built.ann.partitions : 1;
    const curve = [];
    for (const refineFactor of [10, 0]) {
      const probes = [];
      for (let p = 1; p < partitions; p *= 2) probes.push(p);
      probes.push(partitions);
      for (const nprobes of probes) {
        const t = performance.now();
        const run = await searchIndex(syn, queries, qids, { k, nprobes, refineFactor });
        const seconds = (performance.now() - t) / 1000;
        const row = {
          nprobes,
          refineFactor,
          queriesPerSecond: Q / seconds,
          recall10: runOverlap(run, exact, 10),
          recall100: runOverlap(run, exact, 100),
        };
        curve.push(row);
        log(
          `index: nprobes ${nprobes}, refine ${refineFactor}: ${
            row.queriesPerSecond.toFixed(0)
          } q/s, ` +
            `recall@10 ${row.recall10.toFixed(3)}, @100 ${row.recall100.toFixed(3)}`,
        );
        if (row.recall100 >= 0.999) break;
      }
    }
    out.curve = curve;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

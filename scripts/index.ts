/**
 * `deno task index`: encodes a BEIR corpus in shards (Parquet files of ids and embeddings; n
 * processes on n GPUs or machines each take one with `--shard i/n`), then builds a LanceDB table
 * with an ANN index over them, which `deno task eval --index` searches. `--help` lists
 * everything.
 *
 * @module
 */
import {
  checkModelSpec,
  loadModelForCli,
  MODEL_FLAGS,
  MODEL_FLAGS_HELP,
  modelFlagOptions,
  parseCliArgs,
  positiveIntFlag,
  runCli,
  UsageError,
} from "../src/cli/cli_checks.ts";
import { formatDuration, ProgressBar } from "../src/cli/progress.ts";
import { readBeirCorpus } from "../src/data/beir.ts";
import { resolveDataset } from "../src/data/resolve.ts";
import { getGpu } from "../src/gpu/device.ts";
import {
  type AnnSettings,
  buildIndex,
  isUri,
  openManifest,
  readManifest,
  tableUri,
} from "../src/index/lance.ts";
import { corpusFingerprint, encoderIdentity, encodeShard, shardPath } from "../src/index/shards.ts";
import { exists } from "../src/util/fs.ts";

const HELP = `deno task index — encode a corpus in shards and index it in LanceDB

  deno task index --model NAME --data DIR --out INDEX [--shards N]     encode all, then build
  deno task index --model NAME --data DIR --out INDEX --shard I/N      encode shard I of N only
  deno task index --out INDEX --build [ANN options]                    build from the shards

INDEX is a local (or shared file system) directory: the shards and index.json go there. The
LanceDB table goes to INDEX/lance, or with --table-uri anywhere LanceDB can open (s3://,
gs://, az://, a local directory); index.json records it and deno task eval --index finds it.

Shards: shard I of N holds documents [floor((I-1)·D/N), floor(I·D/N)) of the corpus, in order,
as INDEX/shards/shard-000I-of-000N.parquet (columns id, embedding; the encoder's identity and
the corpus fingerprint in its metadata). Start N processes with --shard 1/N ... N/N wherever
they run (one per GPU or machine, any scheduler; INDEX on a shared disk), then --build once.
A rerun skips finished shards and resumes a half-done one from its last complete part. A shard
made with another model, length, prompts or corpus is refused.

Options:
  --model NAME       use-lite, a model directory (sentence-transformers layouts included), a
                     Hub name; default use-lite
  --data DIR         BEIR dataset directory (or one holding <dataset>/)
  --dataset NAME     dataset name for resolution (default scifact)
  --out DIR          the index directory (a local or shared file system path, not a URI)
  --shard I/N        encode shard I of N (1-based) and stop
  --shards N         encode all N shards in this process, then build (default 1)
  --build            build the LanceDB table and ANN index from the shards (all encoded)
  --table-uri URI    where to build the LanceDB table: s3://bucket/path, gs://..., az://...
                     or a local directory (default INDEX/lance, or where the last build put
                     it); credentials from the environment, as LanceDB reads them (AWS_*, ...)
  --max-length N     document tokens at most (default the model's)
  --query-length N   query tokens at most when searching (default 64, capped at the model's)
  --batch-size N     texts per GPU batch (default 64)
  --part-size N      documents per part file, the unit of resumption (default 4096)
${MODEL_FLAGS_HELP}
  --ann KIND         ivf_pq | ivf_hnsw_sq | none; default from the corpus size: none under
                     4096 documents, else ivf_pq
  --partitions N     IVF partitions (default about sqrt(documents), >= 256 vectors each)
  --sub-vectors N    PQ sub-vectors (default dim / 16)
  --nprobes N        partitions probed per query, recorded as the search default (default
                     half the partitions, at least 8, at most 64, and never
                     fewer than hold 4096 vectors)
  --refine-factor N  re-score N x k candidates with the exact vectors (default 10; 0: none)
  --quiet            no progress bar
  -h, --help         this text

Exit status: 0 done, 2 bad flags or input (one line on stderr), 1 failure.`;

function parseShard(v: string): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(v.trim());
  const i = m ? Number(m[1]) : NaN, n = m ? Number(m[2]) : NaN;
  if (!(i >= 1 && n >= i)) throw new UsageError(`--shard must be I/N with 1 <= I <= N (got ${v})`);
  return [i - 1, n];
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      model: { type: "string" },
      data: { type: "string" },
      dataset: { type: "string" },
      out: { type: "string" },
      shard: { type: "string" },
      shards: { type: "string" },
      build: { type: "boolean", default: false },
      "table-uri": { type: "string" },
      "max-length": { type: "string" },
      "query-length": { type: "string" },
      "batch-size": { type: "string" },
      "part-size": { type: "string" },
      ann: { type: "string" },
      partitions: { type: "string" },
      "sub-vectors": { type: "string" },
      nprobes: { type: "string" },
      "refine-factor": { type: "string" },
      ...MODEL_FLAGS,
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  // Every flag is checked before anything loads.
  if (!v.out) throw new UsageError("--out DIR is required (see --help)");
  const out = v.out;
  if (isUri(out)) {
    throw new UsageError(
      `--out must be a local or shared file system directory (got ${out}): the shards and ` +
        `index.json are files there; to put the LanceDB table in object storage give ` +
        `--table-uri ${out} with a local --out`,
    );
  }
  if (v["table-uri"] !== undefined && v.shard !== undefined) {
    throw new UsageError("--table-uri applies to the build; give it with --build or --shards N");
  }
  if (v.shard !== undefined && v.shards !== undefined) {
    throw new UsageError("give --shard I/N (one shard) or --shards N (all of them), not both");
  }
  if (v.shard !== undefined && v.build) {
    throw new UsageError("--shard encodes one shard; build with --build once all are encoded");
  }
  const one = v.shard !== undefined ? parseShard(v.shard) : null;
  const shards = one ? one[1] : positiveIntFlag("--shards", v.shards) ?? 1;
  const maxLengthFlag = positiveIntFlag("--max-length", v["max-length"]);
  const queryLength = positiveIntFlag("--query-length", v["query-length"]) ?? 64;
  const batchSize = positiveIntFlag("--batch-size", v["batch-size"]);
  const partSize = positiveIntFlag("--part-size", v["part-size"]);
  const partitions = positiveIntFlag("--partitions", v.partitions);
  const subVectors = positiveIntFlag("--sub-vectors", v["sub-vectors"]);
  const nprobes = positiveIntFlag("--nprobes", v.nprobes);
  const refine = v["refine-factor"] === undefined ? undefined : Number(v["refine-factor"]);
  if (refine !== undefined && !(Number.isInteger(refine) && refine >= 0)) {
    throw new UsageError(`--refine-factor must be an integer >= 0 (got ${v["refine-factor"]})`);
  }
  if (v.ann !== undefined && !["ivf_pq", "ivf_hnsw_sq", "none"].includes(v.ann)) {
    throw new UsageError(`--ann must be ivf_pq, ivf_hnsw_sq or none (got ${v.ann})`);
  }
  const modelOptions = modelFlagOptions(v);
  const model = v.model ?? "use-lite";
  // --build alone builds from the shards there; with the data flags it encodes first.
  const buildOnly = v.build && v.model === undefined && v.data === undefined &&
    v.dataset === undefined;
  const say = (m: string) => {
    if (!v.quiet) console.error(m);
  };
  const t0 = performance.now();

  if (!buildOnly) {
    await checkModelSpec("--model", model);
    const dir = await resolveDataset(v.dataset ?? "scifact", { data: v.data }).catch((e) => {
      throw new UsageError((e as Error).message);
    });
    const corpus = await readBeirCorpus(`${dir}/corpus.jsonl`);
    const gpu = await getGpu();
    const loaded = await loadModelForCli(gpu, model, { maxLength: maxLengthFlag, ...modelOptions });
    const maxLength = loaded.maxLength;
    say(`index: ${corpus.length} documents, ${shards} shard(s); hashing the model's weights`);
    const identity = await encoderIdentity(loaded, maxLength);
    await openManifest(out, {
      model,
      load: modelOptions,
      identity,
      corpus: await corpusFingerprint(corpus),
      documents: corpus.length,
      shards,
      maxLength,
      queryMaxLength: Math.min(queryLength, loaded.maxLength),
    });
    const todo = one ? [one[0]] : [...Array(shards).keys()];
    for (const i of todo) {
      const bar = new ProgressBar(`shard ${i + 1}/${shards}`, { unit: "docs", silent: v.quiet });
      const r = await encodeShard(gpu, loaded, corpus, {
        out,
        shard: i,
        shards,
        identity,
        maxLength,
        batchSize,
        partSize,
        log: say,
        onProgress: (done, total, skipped) => {
          bar.total = total;
          bar.skipped = skipped;
          bar.update(done);
        },
      });
      bar.finish();
      if (r.encoded) say(`shard ${i + 1}/${shards}: ${r.encoded} documents encoded into ${r.path}`);
    }
    if (one) {
      const missing = [];
      for (let i = 0; i < shards; i++) {
        if (!(await exists(shardPath(out, i, shards)))) missing.push(i + 1);
      }
      say(
        missing.length
          ? `index: shards ${missing.join(", ")} of ${shards} still to encode; then --build`
          : `index: every shard is encoded; build with deno task index --out ${out} --build`,
      );
      console.log(JSON.stringify({ out, shard: one[0] + 1, shards, missing }));
      return;
    }
  }
  if (!(await readManifest(out))) {
    throw new UsageError(`${out} holds no index (encode its shards first)`);
  }
  const built = await buildIndex(out, {
    ann: { kind: v.ann as AnnSettings["kind"] | undefined, partitions, subVectors },
    search: { nprobes, refineFactor: refine },
    tableUri: v["table-uri"],
    log: say,
  });
  const seconds = (performance.now() - t0) / 1000;
  say(`index: built in ${formatDuration(seconds)}: ${JSON.stringify(built.ann)}`);
  console.log(
    JSON.stringify({
      out,
      table: tableUri(out, built),
      ann: built.ann,
      search: built.search,
      seconds,
    }),
  );
}

if (import.meta.main) await runCli("index", () => main(Deno.args), { plainErrorsAreUsage: true });

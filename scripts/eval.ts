/**
 * `deno task eval`: scores runs with trec_eval's semantics, runs the BM25 baseline, and
 * compares two runs with paired statistics. `--help` lists everything.
 *
 * @module
 */

import {
  checkInputFile,
  checkModelSpec,
  checkOutputFile,
  intFlag,
  loadModelForCli,
  MODEL_FLAGS,
  MODEL_FLAGS_HELP,
  modelFlagOptions,
  numberFlag,
  parseCliArgs,
  positiveIntFlag,
  runCli,
  samePath,
  UsageError,
} from "../src/cli/cli_checks.ts";
import { loadBeir, loadBeirQueries } from "../src/data/beir.ts";
import { readQrels } from "../src/data/qrels.ts";
import { resolveDataset } from "../src/data/resolve.ts";
import { readTrecRun, writeTrecRun } from "../src/data/trec.ts";
import type { Qrels, Run } from "../src/data/types.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import {
  type EvalOptions,
  evaluate,
  evaluateQuery,
  type Evaluation,
  formatMeasure,
  msmarcoMrr10,
} from "../src/eval/metrics.ts";
import { pairedBootstrapCi, pairedTTest, tost } from "../src/eval/stats.ts";
import { denseRetrieve, embeddingCacheDir, rerank } from "../src/eval/dense.ts";
import { getGpu } from "../src/gpu/device.ts";
import { retrieveFromIndex } from "../src/index/retrieve.ts";
import { isUri } from "../src/index/lance.ts";
import { encodeProgress } from "../src/cli/progress.ts";

const HELP = `deno task eval — trec_eval-exact evaluation, BM25 baseline, paired comparison

Score a run (TREC run file; qrels in TREC or BEIR TSV format):
  deno task eval --qrels QRELS --run RUN [--json] [-c] [-l N] [-M N] [--per-query] [--msmarco]

Run BM25 on a BEIR dataset split and score it:
  deno task eval --bm25 --data DIR [--dataset NAME] [--split test] [--depth 1000] [--out RUN]

Retrieve with an encoder (exact cosine top-k on the GPU) or re-rank a run, and score it:
  deno task eval --model use-lite|DIR|ORG/NAME --data DIR [--split test] [--k 1000]
                 [--rerank RUN] [--max-length N] [--batch-size N] [--out RUN]
                 [--cache-dir DIR | --no-cache]

Retrieve from an index built by deno task index (queries encoded by its model, searched in
LanceDB), optionally beside the exact top-k from its shards:
  deno task eval --index INDEX --data DIR [--split test] [--k 1000] [--nprobes N]
                 [--refine-factor N] [--table-uri URI] [--exact] [--out RUN] [--json]

Compare two runs (paired t-test, TOST equivalence, bootstrap CI on per-query values):
  deno task eval --compare RUN_A RUN_B --qrels QRELS [--metric ndcg_cut_10] [--margin 0.01]
                 [--alpha 0.05] [--samples 10000] [--seed 1] [--json]

Options:
  --qrels FILE       relevance judgements (TREC 'qid iter docno rel' or BEIR TSV with header)
  --run FILE         run to score (TREC 'qid Q0 docno rank score run_id'; rank is ignored)
  --json             print one JSON object: trec_eval's 'all' row keyed by measure name
                     (with --per-query: {"all": {...}, "per_query": {qid: {...}}})
  -c, --complete     average over every qrels query; queries missing from the run score 0
  -l, --level N      minimum relevance grade counted as relevant (default 1)
  -M, --max-docs N   evaluate only the first N documents per query (trec_eval order)
  --per-query        also print per-query values (trec_eval -q)
  --msmarco          add msmarco_mrr_10 (official MS MARCO MRR@10) to the output
  --bm25             retrieve with BM25 (k1 0.9, b 0.4) instead of reading --run
  --index DIR        retrieve from a LanceDB index (deno task index); with --json the ANN
                     run's measures are at the top level
  --exact            with --index: also the exact top-k from the index's shards on the GPU,
                     under "exact", and the ANN's recall@10/100/1000 against it under
                     "ann_recall"
  --nprobes N        with --index: IVF partitions probed (default the index's)
  --refine-factor N  with --index: candidates re-scored exactly, N x k (default the index's)
  --table-uri URI    with --index: the LanceDB table's database (s3://..., a local directory)
                     instead of the one index.json records
  --data DIR         dataset directory (or a directory holding <dataset>/); else
                     $SELFMARGIN_DATA_DIR/<dataset>, else the local cache
  --dataset NAME     dataset name for resolution (default scifact)
  --split NAME       qrels split, qrels/<split>.tsv (default test)
  --depth N          documents retrieved per query (default 1000)
  --out FILE         write the retrieved run (TREC format)
  --compare          compare the two runs given as arguments
  --metric NAME      per-query measure compared (default ndcg_cut_10)
  --margin D         TOST equivalence margin on the mean difference (default 0.01)
  --alpha A          significance level (default 0.05)
  --samples N        bootstrap resamples (default 10000)
  --seed S           bootstrap seed (default 1)
  --model NAME       dense retrieval with an encoder: 'use-lite' (built in), a model
                     directory, or a Hugging Face Hub name; a sentence-transformers directory
                     is used as it declares (pooling, normalisation, max_seq_length, and its
                     query and document prompts)
  --k N              documents retrieved per query with --model (default 1000; same as --depth)
  --rerank FILE      with --model: re-rank this run's documents (e.g. BM25's top 100)
                     instead of retrieving from the whole corpus
  --max-length N     longest input in tokens with --model (default: the model's)
  --batch-size N     texts per encoder batch (default 64)
  --cache-dir DIR    where encoded corpora are cached (default ${embeddingCacheDir()})
  --no-cache         neither read nor write the embedding cache
${MODEL_FLAGS_HELP}
                     (these three: with --model only)
  -h, --help         this text

The measures: num_q num_ret num_rel num_rel_ret map recip_rank P_k recall_k ndcg ndcg_cut_k
success_k (k: trec_eval's defaults), computed as trec_eval 10.0 does.

Every flag is checked before anything is loaded, and a flag the chosen mode would ignore is an
error. --out is written to a temporary file beside it and renamed into place, so a failure never
leaves it half written. Exit status: 0 done, 2 bad flags or input (one line on stderr), 1 a
failure while working (no GPU, a write error).`;

/** The per-query measure names `evaluate` produces (what --metric may name). */
function measureNames(): string[] {
  return Object.keys(evaluateQuery(new Map([["d", 1]]), { docIds: ["d"], scores: [1] }));
}

/** trec_eval-style table: `measure<TAB>qid<TAB>value`. */
function table(ev: Evaluation, perQuery: boolean, extra: Record<string, number>): string {
  const rows: string[] = [];
  const line = (name: string, qid: string, v: number) =>
    rows.push(`${name.padEnd(22)}\t${qid}\t${formatMeasure(name, v)}`);
  if (perQuery) {
    for (const [qid, m] of ev.perQuery) for (const [k, v] of Object.entries(m)) line(k, qid, v);
  }
  for (const [k, v] of Object.entries({ ...ev.all, ...extra })) line(k, "all", v);
  return rows.join("\n");
}

function report(
  qrels: Qrels,
  run: Run,
  opts: EvalOptions,
  flags: { json: boolean; perQuery: boolean; msmarco: boolean },
): void {
  const ev = evaluate(qrels, run, opts);
  const extra: Record<string, number> = {};
  if (flags.msmarco) extra.msmarco_mrr_10 = msmarcoMrr10(qrels, run).msmarco_mrr_10;
  if (flags.json) {
    const all = { ...ev.all, ...extra };
    console.log(JSON.stringify(
      flags.perQuery ? { all, per_query: Object.fromEntries(ev.perQuery) } : all,
    ));
  } else {
    console.log(table(ev, flags.perQuery, extra));
  }
}

async function main(argv: string[]): Promise<void> {
  const parsed = parseCliArgs({
    args: argv,
    allowPositionals: true,
    options: {
      qrels: { type: "string" },
      run: { type: "string" },
      json: { type: "boolean", default: false },
      complete: { type: "boolean", short: "c", default: false },
      level: { type: "string", short: "l" },
      "max-docs": { type: "string", short: "M" },
      "per-query": { type: "boolean", short: "q", default: false },
      msmarco: { type: "boolean", default: false },
      bm25: { type: "boolean", default: false },
      data: { type: "string" },
      dataset: { type: "string" },
      split: { type: "string" },
      depth: { type: "string" },
      out: { type: "string" },
      compare: { type: "boolean", default: false },
      metric: { type: "string" },
      margin: { type: "string" },
      alpha: { type: "string" },
      samples: { type: "string" },
      seed: { type: "string" },
      model: { type: "string" },
      index: { type: "string" },
      "table-uri": { type: "string" },
      exact: { type: "boolean", default: false },
      nprobes: { type: "string" },
      "refine-factor": { type: "string" },
      k: { type: "string" },
      rerank: { type: "string" },
      "max-length": { type: "string" },
      "batch-size": { type: "string" },
      "cache-dir": { type: "string" },
      "no-cache": { type: "boolean", default: false },
      ...MODEL_FLAGS,
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }

  // Every flag is checked here, before any file, dataset or model is loaded.
  const level = intFlag("-l", v.level);
  const maxDocs = positiveIntFlag("-M", v["max-docs"]);
  const depthFlag = positiveIntFlag("--depth", v.depth);
  const kFlag = positiveIntFlag("--k", v.k);
  const maxLength = positiveIntFlag("--max-length", v["max-length"]);
  const batchSize = positiveIntFlag("--batch-size", v["batch-size"]);
  const modelOptions = modelFlagOptions(v);
  const samples = positiveIntFlag("--samples", v.samples) ?? 10000;
  const seed = intFlag("--seed", v.seed) ?? 1;
  const alpha = numberFlag("--alpha", v.alpha, { above: 0, below: 0.5 }) ?? 0.05;
  const margin = numberFlag("--margin", v.margin, { above: 0 }) ?? 0.01;
  const metric = v.metric ?? "ndcg_cut_10";
  const dataset = v.dataset ?? "scifact";
  const split = v.split ?? "test";

  const mode = v.model !== undefined
    ? "--model"
    : v.index !== undefined
    ? "--index"
    : v.compare
    ? "--compare"
    : v.bm25
    ? "--bm25"
    : "";
  if (v.index !== undefined && (v.model !== undefined || v.bm25 || v.run || v.compare)) {
    fail(
      "--index retrieves with the index's own model; do not give --model, --bm25, --run or --compare",
    );
  }
  if (v.index !== undefined && isUri(v.index)) {
    fail(
      `--index must be the local (or shared file system) index directory holding index.json ` +
        `(got ${v.index}); a table in object storage is reached with --table-uri`,
    );
  }
  const nprobes = positiveIntFlag("--nprobes", v.nprobes);
  const refineFactor = intFlag("--refine-factor", v["refine-factor"], { min: 0 });
  if (v.model !== undefined) {
    if (v.run) fail("--model retrieves its own run; do not give --run (use --rerank to re-rank)");
    if (v.bm25) fail("give either --model or --bm25");
  }
  if (v.compare && (v.bm25 || v.model !== undefined)) {
    fail("--compare compares two run files; do not give --bm25 or --model with it");
  }
  if (v.bm25 && v.run) fail("--bm25 retrieves its own run; do not give --run");
  if (v.compare && v.run) fail("--compare takes its two runs as arguments, not --run");
  // A flag that the chosen mode would ignore is an error, not a silent no-op.
  const given = (name: string) =>
    (v as Record<string, unknown>)[name] !== undefined &&
    (v as Record<string, unknown>)[name] !== false;
  const onlyFor: [string[], string[]][] = [
    [
      [
        "rerank",
        "max-length",
        "batch-size",
        "cache-dir",
        "no-cache",
        ...Object.keys(MODEL_FLAGS),
      ],
      ["--model"],
    ],
    [["exact", "nprobes", "refine-factor", "table-uri"], ["--index"]],
    [["depth", "out", "data", "dataset", "split"], ["--model", "--bm25", "--index"]],
    [["metric", "margin", "alpha", "samples", "seed"], ["--compare"]],
    [["k"], ["--model", "--index"]],
    [["per-query", "msmarco"], ["--model", "--bm25", "--index", ""]],
  ];
  for (const [names, modes] of onlyFor) {
    for (const name of names) {
      if (given(name) && !modes.includes(mode)) {
        const where = modes.map((m) => m || "scoring a --run").join(" or ");
        fail(`--${name} applies only with ${where}${mode ? ` (not with ${mode})` : ""}`);
      }
    }
  }
  if (kFlag !== undefined && depthFlag !== undefined && kFlag !== depthFlag) {
    fail(`--k ${kFlag} and --depth ${depthFlag} say different things; give one of them`);
  }
  if (mode === "--compare") {
    if (parsed.positionals.length !== 2) fail("--compare needs two run files: RUN_A RUN_B");
    if (!v.qrels) fail("--compare needs --qrels");
    const names = measureNames();
    if (!names.includes(metric)) {
      fail(`--metric: unknown measure '${metric}' (one of: ${names.join(" ")})`);
    }
  } else if (parsed.positionals.length > 0) {
    fail(`unexpected arguments: ${parsed.positionals.join(" ")}`);
  }
  if (mode === "" && (!v.qrels || !v.run)) {
    fail("give --qrels and --run (or --bm25, --compare; see --help)");
  }
  for (const [flag, path] of [["--qrels", v.qrels], ["--run", v.run], ["--rerank", v.rerank]]) {
    if (path !== undefined) await checkInputFile(flag!, path);
  }
  for (const path of mode === "--compare" ? parsed.positionals : []) {
    await checkInputFile("--compare", path);
  }
  if (v.model !== undefined) await checkModelSpec("--model", v.model);
  const cacheDir = v["cache-dir"];
  if (cacheDir !== undefined) {
    const info = await Deno.stat(cacheDir).catch(() => null);
    if (info && !info.isDirectory) fail(`${cacheDir}: not a directory (--cache-dir)`);
  }
  let outPath: string | undefined;
  if (v.out !== undefined) {
    for (const [flag, path] of [["--qrels", v.qrels], ["--rerank", v.rerank]]) {
      if (path !== undefined && await samePath(v.out, path)) {
        fail(`--out ${v.out} is the ${flag} file; it would be overwritten`);
      }
    }
    outPath = await checkOutputFile("--out", v.out);
  }

  const opts: EvalOptions = {
    averageComplete: v.complete,
    relevanceLevel: level,
    maxDocsPerQuery: maxDocs,
  };
  const flags = { json: v.json, perQuery: v["per-query"], msmarco: v.msmarco };
  // Qrels given to override the dataset's are read before the retrieval, which takes long.
  const qrelsOverride = v.qrels && (v.model !== undefined || v.bm25 || v.index !== undefined)
    ? await readQrels(v.qrels)
    : undefined;

  if (v.index !== undefined) {
    const dir = await resolveDataset(dataset, { data: v.data });
    const gpu = await getGpu();
    const { queries, qrels } = await loadBeirQueries(dir, split);
    const r = await retrieveFromIndex(gpu, v.index, queries, {
      k: kFlag ?? depthFlag ?? 1000,
      nprobes,
      refineFactor,
      exact: v.exact,
      tableUri: v["table-uri"],
      log: (m: string) => console.error(m),
    });
    if (outPath) await writeTrecRun(outPath, r.run, { runId: "ann" });
    const q = qrelsOverride ?? qrels;
    if (!r.exact) {
      report(q, r.run, opts, flags);
      return;
    }
    const ann = evaluate(q, r.run, opts), exact = evaluate(q, r.exact, opts);
    if (v.json) {
      console.log(JSON.stringify({ ...ann.all, exact: exact.all, ann_recall: r.annRecall }));
    } else {
      console.log(table(ann, false, {}));
      console.log("\nexact top-k from the shards:");
      console.log(table(exact, false, {}));
      const d = (m: string) => (ann.all[m] - exact.all[m]).toFixed(4);
      console.log(
        `\nANN recall against exact: ${
          Object.entries(r.annRecall!).map(([k, x]) => `@${k} ${x.toFixed(4)}`).join(", ")
        }; ANN minus exact: nDCG@10 ${d("ndcg_cut_10")}, Recall@1000 ${d("recall_1000")}`,
      );
    }
    return;
  }

  if (v.model !== undefined) {
    const dir = await resolveDataset(dataset, { data: v.data });
    const k = kFlag ?? depthFlag ?? 1000;
    // The model before the corpus: a model that does not load fails in seconds.
    const gpu = await getGpu();
    const model = await loadModelForCli(gpu, v.model, { maxLength, ...modelOptions });
    const { corpus, queries, qrels } = await loadBeir(dir, split);
    const common = {
      corpus,
      queries,
      maxLength,
      batchSize,
      cacheDir: v["no-cache"] ? null : (cacheDir ?? embeddingCacheDir()),
      onProgress: encodeProgress(),
      log: (m: string) => console.error(m),
    };
    const t0 = performance.now();
    let run: Run;
    if (v.rerank) {
      const candidates = (await readTrecRun(v.rerank)).run;
      run = await rerank(gpu, model, { ...common, candidates, depth: kFlag ?? depthFlag });
    } else {
      run = await denseRetrieve(gpu, model, { ...common, k });
    }
    const seconds = (performance.now() - t0) / 1000;
    console.error(
      `${v.rerank ? "rerank" : "dense"} (${v.model}): ${corpus.length} documents, ` +
        `${queries.size} queries (${split}), ${seconds.toFixed(1)} s`,
    );
    if (outPath) await writeTrecRun(outPath, run, { runId: v.rerank ? "rerank" : "dense" });
    const q = qrelsOverride ?? qrels;
    report(q, run, opts, flags);
    return;
  }

  if (v.compare) {
    const qrels = await readQrels(v.qrels!);
    const [fa, fb] = parsed.positionals;
    const [ra, rb] = [(await readTrecRun(fa)).run, (await readTrecRun(fb)).run];
    // Both runs are scored over every qrels query (-c), so the per-query values pair up.
    const cmpOpts = { ...opts, averageComplete: true };
    const ea = evaluate(qrels, ra, cmpOpts);
    const eb = evaluate(qrels, rb, cmpOpts);
    const qids = [...ea.perQuery.keys()];
    if (qids.length === 0) fail(`${v.qrels}: no judged queries to compare over`);
    const a = qids.map((q) => ea.perQuery.get(q)![metric]);
    const b = qids.map((q) => eb.perQuery.get(q)![metric]);
    const t = pairedTTest(a, b, { confidence: 1 - alpha });
    const eq = tost(a, b, { margin, alpha });
    const boot = pairedBootstrapCi(a, b, { samples, seed, confidence: 1 - alpha });
    const result = {
      metric,
      queries: qids.length,
      run_a: { file: fa, mean: ea.all[metric] },
      run_b: { file: fb, mean: eb.all[metric] },
      mean_diff: t.meanDiff,
      t_test: { t: t.t, df: t.df, p_value: t.pValue, ci: t.ci, confidence: t.confidence },
      tost: {
        margin,
        p_value: eq.pValue,
        p_lower: eq.pLower,
        p_upper: eq.pUpper,
        equivalent: eq.equivalent,
        ci: eq.ci,
      },
      bootstrap: {
        ci: boot.ci,
        confidence: boot.confidence,
        samples: boot.samples,
        seed: boot.seed,
      },
    };
    if (v.json) console.log(JSON.stringify(result));
    else {
      const f = (x: number) => x.toFixed(4);
      console.log(
        [
          `${metric} over ${qids.length} queries (missing queries count as 0)`,
          `  A ${fa}: ${f(ea.all[metric])}`,
          `  B ${fb}: ${f(eb.all[metric])}`,
          `  mean A - B: ${f(t.meanDiff)}`,
          `  paired t-test: t = ${t.t.toFixed(3)}, df = ${t.df}, p = ${t.pValue.toPrecision(4)}, ` +
          `${Math.round(t.confidence * 100)}% CI [${f(t.ci[0])}, ${f(t.ci[1])}]`,
          `  TOST (margin ±${margin}): p = ${eq.pValue.toPrecision(4)} -> ` +
          `${eq.equivalent ? "equivalent" : "not shown equivalent"} at alpha ${alpha}` +
          ` (${Math.round((1 - 2 * alpha) * 100)}% CI [${f(eq.ci[0])}, ${f(eq.ci[1])}])`,
          `  bootstrap (${boot.samples} resamples, seed ${boot.seed}): ` +
          `${Math.round(boot.confidence * 100)}% CI [${f(boot.ci[0])}, ${f(boot.ci[1])}]`,
        ].join("\n"),
      );
    }
    return;
  }

  if (v.bm25) {
    const dir = await resolveDataset(dataset, { data: v.data });
    const { corpus, queries, qrels } = await loadBeir(dir, split);
    const depth = depthFlag ?? 1000;
    const t0 = performance.now();
    const index = Bm25Index.build(corpus);
    const run = index.retrieve(queries, depth);
    const seconds = (performance.now() - t0) / 1000;
    console.error(
      `bm25: ${corpus.length} documents, ${queries.size} queries (${split}), ` +
        `${seconds.toFixed(1)} s`,
    );
    if (outPath) await writeTrecRun(outPath, run, { runId: "bm25" });
    const q = qrelsOverride ?? qrels;
    report(q, run, opts, flags);
    return;
  }

  const qrels = await readQrels(v.qrels!);
  const { run } = await readTrecRun(v.run!);
  report(qrels, run, opts, flags);
}

function fail(message: string): never {
  throw new UsageError(message);
}

if (import.meta.main) {
  // The library's plain errors (a dataset that cannot be found: its message says what to do)
  // count as bad input here.
  await runCli("eval", () => main(Deno.args), { plainErrorsAreUsage: true });
}

/**
 * `deno task mine`: hard negatives for every judged training query of a BEIR dataset, from BM25
 * or a dense model, from a rank window, with false negatives filtered by score; written as JSON
 * Lines that `deno task train --negatives FILE` reads (and, being scored, `--teacher FILE` too).
 * `--help` lists everything.
 *
 * @module
 */
import {
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
  UsageError,
} from "../src/cli/cli_checks.ts";
import { encodeProgress, formatDuration, ProgressBar } from "../src/cli/progress.ts";
import { loadBeir } from "../src/data/beir.ts";
import { resolveDataset } from "../src/data/resolve.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { embeddingCacheDir } from "../src/eval/dense.ts";
import { getGpu } from "../src/gpu/device.ts";
import {
  bm25Retriever,
  type CandidateRetriever,
  checkMineOptions,
  denseRetriever,
  type FalseNegativeFilter,
  mineHardNegatives,
  type MineOptions,
  writeMined,
} from "../src/train/mine.ts";

const HELP = `deno task mine — hard negatives for training, with false negatives filtered

  deno task mine --data DIR|--dataset NAME --out FILE.jsonl [--model NAME]
                 [--ranks 10-100] [--negatives 8] [--max-score-ratio R | --margin M]
                 [--sample top|random] [--format triples|tuples]

For every (query, relevant document) pair of the split's qrels, the candidates at ranks FROM to
TO of the retriever's list for the query, minus every document judged relevant for it, minus
those scoring too close to the positive (likely unjudged relevant documents: false negatives),
give up to N negatives.

Retriever:
  (default)          BM25 (k1 0.9, b 0.4, as deno task eval --bm25)
  --model NAME       a dense model instead (use-lite, a model directory, a sentence-
                     transformers directory, a Hub name): cosine of its embeddings, queries and
                     documents with its prompts
${MODEL_FLAGS_HELP}
  --max-length N     longest input in tokens with --model (default the model's)
  --batch-size N     texts per GPU batch with --model (default 64)
  --cache-dir DIR    the embedding cache (default ${embeddingCacheDir()})
  --no-cache         neither read nor write the embedding cache

Mining:
  --data DIR         BEIR dataset directory (or one holding <dataset>/)
  --dataset NAME     dataset name for resolution (default scifact)
  --split NAME       the qrels split mined (default train)
  --ranks FROM-TO    the rank window, 1-based and inclusive (default 10-100: skipping the top
                     ranks, where unjudged relevant documents crowd)
  --negatives N      negatives per (query, positive) pair (default 8)
  --max-score-ratio R
                     keep a candidate only if its score <= R x the positive's score
  --margin M         keep a candidate only if its score <= the positive's score - M
                     (at most one of the two; default: no filter)
  --sample S         top: the best-ranked candidates left (default); random: a seeded draw
  --seed N           seed of --sample random (default 1)

Output:
  --out FILE         JSON Lines, replaced only once complete
  --format F         triples (default): {"qid","pos","neg","score_pos","score_neg"} per
                     negative, which deno task train reads as --negatives FILE (and as
                     --teacher FILE for Margin-MSE with the miner as teacher); tuples:
                     {"qid","pos","negs":[...],"score_pos","scores_neg":[...]} per pair, which
                     --negatives FILE and --teacher FILE read too
  --quiet            no progress bar
  -h, --help         this text

A summary goes to stderr (pairs, negatives, candidates judged relevant, candidates filtered,
pairs short of N) and a JSON line of it to stdout. Exit status: 0 done, 2 bad flags or input
(one line on stderr), 1 failure while mining.`;

/** `FROM-TO` as two integers, checked. */
function parseRanks(v: string | undefined): [number, number] {
  if (v === undefined) return [10, 100];
  const m = /^(\d+)-(\d+)$/.exec(v.trim());
  const r: [number, number] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(r[0] >= 1 && r[1] >= r[0])) {
    throw new UsageError(`--ranks must be FROM-TO with 1 <= FROM <= TO (got ${v || "nothing"})`);
  }
  return r;
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      data: { type: "string" },
      dataset: { type: "string" },
      split: { type: "string" },
      model: { type: "string" },
      ranks: { type: "string" },
      negatives: { type: "string" },
      "max-score-ratio": { type: "string" },
      margin: { type: "string" },
      sample: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      format: { type: "string" },
      "max-length": { type: "string" },
      "batch-size": { type: "string" },
      "cache-dir": { type: "string" },
      "no-cache": { type: "boolean", default: false },
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
  const ranks = parseRanks(v.ranks);
  const negatives = positiveIntFlag("--negatives", v.negatives) ?? 8;
  const ratio = numberFlag("--max-score-ratio", v["max-score-ratio"], { above: 0 });
  const margin = numberFlag("--margin", v.margin, { above: -Infinity });
  if (ratio !== undefined && margin !== undefined) {
    throw new UsageError("give at most one of --max-score-ratio and --margin");
  }
  if (margin !== undefined && margin < 0) {
    throw new UsageError(`--margin must be >= 0 (got ${v.margin})`);
  }
  const filter: FalseNegativeFilter = ratio !== undefined
    ? { kind: "ratio", ratio }
    : margin !== undefined
    ? { kind: "margin", margin }
    : { kind: "none" };
  const sample = v.sample ?? "top";
  if (sample !== "top" && sample !== "random") {
    throw new UsageError(`--sample must be top or random (got ${sample})`);
  }
  const format = v.format ?? "triples";
  if (format !== "triples" && format !== "tuples") {
    throw new UsageError(`--format must be triples or tuples (got ${format})`);
  }
  const seed = intFlag("--seed", v.seed) ?? 1;
  const maxLength = positiveIntFlag("--max-length", v["max-length"]);
  const batchSize = positiveIntFlag("--batch-size", v["batch-size"]);
  if (v.model === undefined) {
    for (const f of ["max-length", "batch-size", "cache-dir", ...Object.keys(MODEL_FLAGS)]) {
      if ((v as Record<string, unknown>)[f] !== undefined) {
        throw new UsageError(`--${f} applies only with --model`);
      }
    }
    if (v["no-cache"]) throw new UsageError("--no-cache applies only with --model");
  }
  const modelOptions = modelFlagOptions(v);
  const opts: MineOptions = { ranks, negatives, filter, sample, seed };
  try {
    checkMineOptions(opts);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (v.model !== undefined) await checkModelSpec("--model", v.model);
  if (!v.out) throw new UsageError("--out FILE is required (see --help)");
  await checkOutputFile("--out", v.out);
  const say = (m: string) => {
    if (!v.quiet) console.error(m);
  };

  const dir = await resolveDataset(v.dataset ?? "scifact", { data: v.data }).catch((e) => {
    throw new UsageError((e as Error).message);
  });
  const split = v.split ?? "train";
  const t0 = performance.now();
  const { corpus, queries, qrels } = await loadBeir(dir, split);
  let retriever: CandidateRetriever;
  if (v.model !== undefined) {
    const gpu = await getGpu();
    const model = await loadModelForCli(gpu, v.model, { maxLength, ...modelOptions });
    retriever = await denseRetriever(gpu, model, corpus, queries, {
      name: v.model,
      maxLength,
      batchSize,
      cacheDir: v["no-cache"] ? null : (v["cache-dir"] ?? embeddingCacheDir()),
      onProgress: encodeProgress({ silent: v.quiet }),
      log: say,
    });
  } else {
    retriever = bm25Retriever(Bm25Index.build(corpus), queries);
  }
  let bar: ProgressBar | null = null;
  const { tuples, stats } = await mineHardNegatives(retriever, { queries, qrels }, {
    ...opts,
    onProgress: (done, total) => {
      bar ??= new ProgressBar("mine", { total, unit: "queries", silent: v.quiet });
      bar.update(done);
    },
  });
  (bar as ProgressBar | null)?.finish();
  await writeMined(v.out, tuples, format);
  const seconds = (performance.now() - t0) / 1000;
  say(
    `mine: ${retriever.name}, ranks ${ranks[0]}-${ranks[1]}: ${stats.negatives} negatives for ` +
      `${stats.pairs} pairs of ${stats.queries} ${split} queries; ${stats.judgedRelevant} ` +
      `candidates judged relevant and ${stats.filtered} filtered as likely false negatives ` +
      `were left out; ${stats.short} pairs got fewer than ${negatives}; ` +
      `${formatDuration(seconds)}; wrote ${v.out}`,
  );
  console.log(JSON.stringify({ out: v.out, retriever: retriever.name, ...stats, seconds }));
}

if (import.meta.main) await runCli("mine", () => main(Deno.args), { plainErrorsAreUsage: true });

/**
 * `deno task train`: fine-tunes a bi-encoder on WebGPU with the relevance-margin family
 * (self-distillation), Margin-MSE or InfoNCE, on a BEIR directory or MS MARCO TSV files, with a
 * validation set carved from the train queries, early stopping, best and last checkpoints, and
 * `--resume`. `--help` lists everything.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolveDataset } from "../src/data/resolve.ts";
import { Bm25Index } from "../src/eval/bm25.ts";
import { getGpu } from "../src/gpu/device.ts";
import { readTeacherScores } from "../src/losses/margin_mse.ts";
import { loadEncoder } from "../src/models/load.ts";
import {
  beirTriples,
  loadBeirTraining,
  loadMsMarcoTraining,
  missingPositivesWarning,
  type NegativeSource,
  type QuerySet,
  teacherScoresFor,
  type Triple,
  validationData,
} from "../src/train/data.ts";
import { checkOutDir, type LossKind, train, type TrainOptions } from "../src/train/trainer.ts";
import type { Doc } from "../src/data/types.ts";
import { lockDir } from "../src/util/lock.ts";

const HELP = `deno task train — fine-tune a bi-encoder (self-distillation with relevance margins)

  deno task train --data DIR --out DIR [options]              (BEIR directory, qrels/train.tsv)
  deno task train --triples FILE --queries FILE --collection FILE [--qrels FILE] --out DIR ...
                                                              (MS MARCO TSV files)

Data:
  --data DIR            BEIR dataset directory (or one holding <dataset>/); else
                        $SELFMARGIN_DATA_DIR/<dataset>, else the local cache
  --dataset NAME        dataset name for resolution (default scifact)
  --negatives SRC       bm25 (default) | random | FILE (lines 'qid pos_id neg_id')
  --bm25-depth N        BM25 negatives are drawn from the top N minus the positives (default 100)
  --triples FILE        MS MARCO triples 'qid<TAB>pid+<TAB>pid-' (ids, with --queries and
                        --collection) or 'query<TAB>positive<TAB>negative' (texts)
  --queries FILE        MS MARCO queries TSV (qid<TAB>text)
  --collection FILE     MS MARCO collection TSV (pid<TAB>passage)
  --qrels FILE          MS MARCO TRAIN qrels, for the validation split
  --max-triples N       read at most N MS MARCO triples
  --teacher FILE        teacher scores for --loss margin-mse: 'score_pos score_neg qid pid_pos
                        pid_neg' TSV or JSONL {qid, pos, neg, score_pos, score_neg}
  --val-queries N|F     validation queries carved from the TRAIN queries: a count, or a
                        fraction below 1 (default 50; 0 for none)
  --val-depth K         validation re-ranks each query's BM25 top K (default 100)

Model and loss:
  --model NAME          use-lite (default), a model directory, or a Hub name
  --loss KIND           margin (default) | margin-mse | infonce
  --target T            adaptive (default) | distributed | a number (static margin)
  --in-batch            margin over every negative of the batch (B x B)
  --per-query           in-batch indexing cos(q_i,p_i) - cos(q_i,n_j) (default: the reference's)
  --error E             l1 | l2 (default) | soft
  --detach-target       no gradient through the target
  --scale S             InfoNCE logit scale (default 20)

Optimisation:
  --batch-size N        triples per step (default 32)
  --query-length N      query tokens (default 20)
  --doc-length N        document tokens (default 200; clamped to the model's maximum)
  --lr X                peak learning rate (default 5e-7, the reference's)
  --weight-decay X      AdamW decoupled weight decay (default 0: Adam, as the reference)
  --schedule S          constant (default) | linear | exponential (gamma 0.99999 per step)
  --gamma X             exponential decay per step (default 0.99999)
  --warmup N            linear warm-up steps (default 0)
  --clip X              clip the global gradient norm to X (default: off, norm measured)
  --max-steps N         stop after N steps
  --epochs N            passes over the triples (default 1 without --max-steps)
  --eval-every N        validate and checkpoint every N steps (default 500)
  --patience N          stop after N validations without improvement (default 16)
  --seed S              seed of negatives, validation split and data order (default 1)

Output:
  --out DIR             output directory: last/, best/ (model directories), log.jsonl,
                        args.json; refused when it already holds a run (any of these), so
                        nothing is overwritten. While a run uses it, DIR/.lock names its pid;
                        a second run on DIR is refused
  --resume              continue the run in --out from last/ (same flags and data); a save
                        interrupted mid-way (last.old/) is recovered
  --break-lock          take over a stale DIR/.lock (its run no longer runs on this host);
                        never a live one, nor one of another host
  --stop-after N        stop after N steps of this invocation, saving last/ (then --resume)
  --quiet               no progress bar
  -h, --help            this text`;

function fail(message: string): never {
  console.error(`train: ${message}`);
  Deno.exit(2);
}

function num(v: string | undefined, name: string, dflt: number, int = false): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) {
    fail(`${name} expects ${int ? "an integer" : "a number"}, got '${v}'`);
  }
  return n;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        data: { type: "string" },
        dataset: { type: "string", default: "scifact" },
        negatives: { type: "string", default: "bm25" },
        "bm25-depth": { type: "string" },
        triples: { type: "string" },
        queries: { type: "string" },
        collection: { type: "string" },
        qrels: { type: "string" },
        "max-triples": { type: "string" },
        teacher: { type: "string" },
        "val-queries": { type: "string" },
        "val-depth": { type: "string" },
        model: { type: "string", default: "use-lite" },
        loss: { type: "string", default: "margin" },
        target: { type: "string", default: "adaptive" },
        "in-batch": { type: "boolean", default: false },
        "per-query": { type: "boolean", default: false },
        error: { type: "string", default: "l2" },
        "detach-target": { type: "boolean", default: false },
        scale: { type: "string" },
        "batch-size": { type: "string" },
        "query-length": { type: "string" },
        "doc-length": { type: "string" },
        lr: { type: "string" },
        "weight-decay": { type: "string" },
        schedule: { type: "string", default: "constant" },
        gamma: { type: "string" },
        warmup: { type: "string" },
        clip: { type: "string" },
        "max-steps": { type: "string" },
        epochs: { type: "string" },
        "eval-every": { type: "string" },
        patience: { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        resume: { type: "boolean", default: false },
        "break-lock": { type: "boolean", default: false },
        "stop-after": { type: "string" },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
    });
  } catch (e) {
    fail(`${(e as Error).message} (see --help)`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (!v.out) fail("--out DIR is required");
  const loss = v.loss as LossKind;
  if (!["margin", "margin-mse", "infonce"].includes(loss)) {
    fail(`--loss must be margin, margin-mse or infonce, got '${v.loss}'`);
  }
  if (!["constant", "linear", "exponential"].includes(v.schedule!)) {
    fail(`--schedule must be constant, linear or exponential, got '${v.schedule}'`);
  }
  if (!["l1", "l2", "soft"].includes(v.error!)) fail(`--error must be l1, l2 or soft`);
  const target = v.target === "adaptive" || v.target === "distributed"
    ? v.target
    : num(v.target, "--target", 0);
  const seed = num(v.seed, "--seed", 1, true);
  const valArg = num(v["val-queries"], "--val-queries", 50);
  const validationSpec = valArg === 0
    ? undefined
    : valArg < 1
    ? { fraction: valArg }
    : { count: Math.round(valArg) };
  const valDepth = num(v["val-depth"], "--val-depth", 100, true);
  const say = (m: string) => console.error(m);
  // Refuse a used or locked --out before loading data; the lock is held until the end.
  await checkOutDir(v.out, v.resume!);
  await using lock = await lockDir(v.out, {
    breakStale: v["break-lock"],
    breakHint: "pass --break-lock",
  });
  if (lock.broken) {
    say(`took over the stale lock of pid ${lock.broken.pid} (since ${lock.broken.started})`);
  }

  // ---- data -------------------------------------------------------------------------------
  let triples: Triple[];
  let corpus: Doc[] = [];
  let validation: QuerySet | undefined;
  let bm25: Bm25Index | undefined;
  const t0 = performance.now();
  if (v.triples) {
    if (!v.queries || !v.collection) {
      fail("--triples needs --queries and --collection (ids), or use text triples without them");
    }
    const ms = await loadMsMarcoTraining({
      triples: v.triples,
      queries: v.queries,
      collection: v.collection,
      qrels: v.qrels,
      validation: v.qrels ? validationSpec : undefined,
      seed,
      limit: v["max-triples"] ? num(v["max-triples"], "--max-triples", 0, true) : undefined,
    });
    triples = ms.triples;
    corpus = ms.corpus;
    validation = ms.validation;
    if (!v.qrels) say("no --qrels: training without validation");
  } else {
    const dir = await resolveDataset(v.dataset!, { data: v.data });
    const beir = await loadBeirTraining(dir, validationSpec, seed);
    corpus = beir.corpus;
    validation = beir.validation;
    const negatives: NegativeSource = v.negatives === "bm25"
      ? { kind: "bm25", depth: num(v["bm25-depth"], "--bm25-depth", 100, true) }
      : v.negatives === "random"
      ? { kind: "random" }
      : { kind: "file", path: v.negatives! };
    if (negatives.kind === "bm25" || validation) {
      say(`indexing ${corpus.length} documents for BM25`);
      bm25 = Bm25Index.build(corpus);
    }
    const built = await beirTriples(corpus, beir.train, { negatives, seed, bm25 });
    triples = built.triples;
    say(
      `${built.stats.triples} triples from ${built.stats.queries} train queries` +
        (built.stats.randomFallbacks ? ` (${built.stats.randomFallbacks} random fallbacks)` : "") +
        (validation ? `; ${validation.qrels.size} validation queries carved from train` : ""),
    );
    const missing = missingPositivesWarning(built.stats);
    if (missing) say(`warning: ${missing}`);
  }
  let teacher: { pos: Float32Array; neg: Float32Array } | undefined;
  if (loss === "margin-mse") {
    if (!v.teacher) fail("--loss margin-mse needs --teacher FILE");
    teacher = teacherScoresFor(triples, await readTeacherScores(v.teacher));
  }
  const val = validation
    ? validationData(corpus, validation, valDepth, bm25 ?? Bm25Index.build(corpus))
    : undefined;
  say(`data ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- model and training -------------------------------------------------------------------
  const gpu = await getGpu();
  const model = await loadEncoder(gpu, v.model!);
  const opts: TrainOptions = {
    loss,
    target,
    inBatch: v["in-batch"],
    inBatchIndexing: v["per-query"] ? "per-query" : "reference",
    error: v.error as "l1" | "l2" | "soft",
    detachTarget: v["detach-target"],
    infonceScale: v.scale ? num(v.scale, "--scale", 20) : undefined,
    batchSize: num(v["batch-size"], "--batch-size", 32, true),
    queryLength: num(v["query-length"], "--query-length", 20, true),
    docLength: num(v["doc-length"], "--doc-length", 200, true),
    lr: num(v.lr, "--lr", 5e-7),
    weightDecay: num(v["weight-decay"], "--weight-decay", 0),
    schedule: v.schedule as "constant" | "linear" | "exponential",
    gamma: v.gamma ? num(v.gamma, "--gamma", 0.99999) : undefined,
    warmup: num(v.warmup, "--warmup", 0, true),
    maxGradNorm: v.clip ? num(v.clip, "--clip", Infinity) : Infinity,
    maxSteps: v["max-steps"] ? num(v["max-steps"], "--max-steps", 0, true) : undefined,
    epochs: v.epochs ? num(v.epochs, "--epochs", 1, true) : undefined,
    evalEvery: num(v["eval-every"], "--eval-every", 500, true),
    patience: num(v.patience, "--patience", 16, true),
    seed,
    outDir: v.out,
    resume: v.resume,
    lock,
    // args.json: written by train once a fresh run is accepted, never by a refused one.
    args: { args: Deno.args, seed, adapter: gpu.adapterName },
    stopAfter: v["stop-after"] ? num(v["stop-after"], "--stop-after", 0, true) : undefined,
    progress: !v.quiet,
    log: say,
  };
  if (opts.docLength > model.maxLength || opts.queryLength > model.maxLength) {
    say(`lengths clamped to the model's maximum of ${model.maxLength} tokens`);
  }
  const result = await train(gpu, model, { triples, teacher, validation: val }, opts);
  const s = result.state;
  console.log(JSON.stringify({
    out: v.out,
    steps: s.step,
    total_steps: result.totalSteps,
    stop_reason: s.stopReason,
    best_ndcg_cut_10: s.bestMetric,
    best_step: s.bestStep,
    seed,
  }));
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    fail((e as Error).message);
  }
}

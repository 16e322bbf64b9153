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
  beirTrainingTriples,
  loadMsMarcoTraining,
  type NegativeSource,
  type QuerySet,
  teacherScoresFor,
  type Triple,
  validationData,
} from "../src/train/data.ts";
import {
  checkOutDir,
  checkTrainOptions,
  DEFAULT_TRAIN_OPTIONS,
  LOSS_KINDS,
  type LossKind,
  type ScheduleKind,
  train,
  type TrainDefaults,
  type TrainOptions,
  withTrainDefaults,
} from "../src/train/trainer.ts";
import { SCHEDULE_KINDS } from "../src/train/schedule.ts";
import type { MarginError } from "../src/losses/margin.ts";
import type { Doc } from "../src/data/types.ts";
import { lockDir } from "../src/util/lock.ts";
import { trainProgress } from "../src/cli/train_progress.ts";
import { modelFlagOptions } from "../src/cli/cli_checks.ts";

/** The negative source a `--negatives` flag names (bm25, random or a file). */
export function negativeSource(
  flag: string | undefined,
  bm25Depth: number | undefined,
): NegativeSource {
  const arg = flag ?? DATA_DEFAULTS.negatives;
  return arg === "bm25"
    ? { kind: "bm25", depth: bm25Depth ?? DATA_DEFAULTS.bm25Depth }
    : arg === "random"
    ? { kind: "random" }
    : { kind: "file", path: arg };
}

/**
 * The validation carve a `--val-queries` value asks for: none (0), a fraction (below 1) or a
 * count of train queries.
 */
export function validationSplit(
  valQueries: number = DATA_DEFAULTS.valQueries,
): { count: number } | { fraction: number } | undefined {
  return valQueries === 0
    ? undefined
    : valQueries < 1
    ? { fraction: valQueries }
    : { count: Math.round(valQueries) };
}

/** Defaults of the data flags (the training options' are {@link DEFAULT_TRAIN_OPTIONS}). */
export const DATA_DEFAULTS = Object.freeze({
  dataset: "scifact",
  negatives: "bm25",
  bm25Depth: 100,
  negativesPerPositive: 1,
  valQueries: 50,
  valDepth: 100,
  model: "use-lite",
});

/**
 * A flag and its `--help` line. Its default, when it has one, is read from
 * {@link DEFAULT_TRAIN_OPTIONS} (`option`) or {@link DATA_DEFAULTS} (`data`), never written
 * here; the help text shows it where it says `{d}`, else as ` (default X)` at its end.
 */
interface Flag {
  /** Name without the dashes. */
  name: string;
  /** The value's placeholder; absent for a switch. */
  arg?: string;
  /** What it does. */
  help: string;
  /** The training option whose default it has. */
  option?: keyof TrainDefaults;
  /** The data default it has. */
  data?: keyof typeof DATA_DEFAULTS;
  /** How the default reads. Default `String`. */
  show?: (value: unknown) => string;
}

const SECTIONS: [title: string, flags: Flag[]][] = [
  ["Data", [
    {
      name: "data",
      arg: "DIR",
      help: "BEIR dataset directory (or one holding <dataset>/); else " +
        "$SELFMARGIN_DATA_DIR/<dataset>, else the local cache",
    },
    { name: "dataset", arg: "NAME", help: "dataset name for resolution", data: "dataset" },
    {
      name: "negatives",
      arg: "SRC",
      help:
        "bm25 | random | FILE with lines 'qid pos_id neg_id', or the JSON lines of deno task mine",
      data: "negatives",
    },
    {
      name: "bm25-depth",
      arg: "N",
      help: "BM25 negatives are drawn from the top N minus the positives",
      data: "bm25Depth",
    },
    {
      name: "negatives-per-positive",
      arg: "K",
      help: "distinct negatives per (query, positive) pair",
      data: "negativesPerPositive",
    },
    {
      name: "triples",
      arg: "FILE",
      help: "MS MARCO triples 'qid<TAB>pid+<TAB>pid-' (ids, with --queries and --collection) " +
        "or 'query<TAB>positive<TAB>negative' (texts)",
    },
    { name: "queries", arg: "FILE", help: "MS MARCO queries TSV (qid<TAB>text)" },
    { name: "collection", arg: "FILE", help: "MS MARCO collection TSV (pid<TAB>passage)" },
    { name: "qrels", arg: "FILE", help: "MS MARCO TRAIN qrels, for the validation split" },
    { name: "max-triples", arg: "N", help: "read at most N MS MARCO triples" },
    {
      name: "teacher",
      arg: "FILE",
      help: "teacher scores for --loss margin-mse: 'score_pos score_neg qid pid_pos pid_neg' " +
        "TSV or JSONL {qid, pos, neg, score_pos, score_neg}, or deno task mine's tuples " +
        "{qid, pos, negs, score_pos, scores_neg}",
    },
    {
      name: "val-queries",
      arg: "N|F",
      help: "validation queries carved from the TRAIN queries: a count, or a fraction below 1 " +
        "(default {d}; 0 for none)",
      data: "valQueries",
    },
    {
      name: "val-depth",
      arg: "K",
      help: "validation re-ranks each query's BM25 top K",
      data: "valDepth",
    },
  ]],
  ["Model and loss", [
    {
      name: "model",
      arg: "NAME",
      help: "use-lite, a model directory, or a Hub name; a sentence-transformers directory " +
        "is trained as it declares (pooling, normalisation, max_seq_length, prompts), and " +
        "every checkpoint is saved in that layout with a model card (README.md)",
      data: "model",
    },
    {
      name: "pooling",
      arg: "MODE",
      help: "cls | mean | max | lasttoken | pooler, instead of what the model declares",
    },
    {
      name: "query-prompt",
      arg: "S",
      help: 'prepended to every query instead of the model\'s own prompt ("" for none)',
    },
    { name: "document-prompt", arg: "S", help: "the same for documents" },
    { name: "loss", arg: "KIND", help: LOSS_KINDS.join(" | "), option: "loss" },
    {
      name: "target",
      arg: "T",
      help: "adaptive | distributed | a number: a static margin",
      option: "target",
    },
    { name: "in-batch", help: "margin over every negative of the batch (B x B)" },
    {
      name: "per-query",
      help: "in-batch indexing cos(q_i,p_i) - cos(q_i,n_j) (default indexing: {d})",
      option: "inBatchIndexing",
    },
    { name: "error", arg: "E", help: "l1 | l2 | soft", option: "error" },
    { name: "detach-target", help: "no gradient through the target" },
    { name: "scale", arg: "S", help: "InfoNCE logit scale", option: "infonceScale" },
  ]],
  ["Optimisation", [
    { name: "batch-size", arg: "N", help: "triples per step", option: "batchSize" },
    {
      name: "chunk-size",
      arg: "N",
      help: "encode the batch N triples at a time with cached embedding gradients (GradCache): " +
        "the same gradients, memory bounded by N, for batches larger than memory allows " +
        "(default {d}: the whole batch at once)",
      option: "chunkSize",
    },
    { name: "query-length", arg: "N", help: "query tokens", option: "queryLength" },
    {
      name: "doc-length",
      arg: "N",
      help: "document tokens (default {d}; clamped to the model's maximum)",
      option: "docLength",
    },
    {
      name: "lr",
      arg: "X",
      help: "peak learning rate (default {d}, the reference's)",
      option: "lr",
    },
    {
      name: "weight-decay",
      arg: "X",
      help: "AdamW decoupled weight decay (default {d}: Adam, as the reference)",
      option: "weightDecay",
    },
    {
      name: "schedule",
      arg: "S",
      help: `${
        SCHEDULE_KINDS.join(" | ")
      } (default {d}; exponential multiplies by --gamma per step)`,
      option: "schedule",
    },
    { name: "gamma", arg: "X", help: "exponential decay per step", option: "gamma" },
    { name: "warmup", arg: "N", help: "linear warm-up steps", option: "warmup" },
    {
      name: "clip",
      arg: "X",
      help: "clip the global gradient norm to X (default: {d})",
      option: "maxGradNorm",
      show: (v) => v === Infinity ? "off, norm measured" : String(v),
    },
    { name: "max-steps", arg: "N", help: "stop after N steps" },
    { name: "epochs", arg: "N", help: "passes over the triples (default 1 without --max-steps)" },
    {
      name: "eval-every",
      arg: "N",
      help: "validate and checkpoint every N steps",
      option: "evalEvery",
    },
    {
      name: "patience",
      arg: "N",
      help: "stop after N validations without improvement",
      option: "patience",
    },
    {
      name: "seed",
      arg: "S",
      help: "seed of negatives, validation split and data order",
      option: "seed",
    },
  ]],
  ["Output", [
    {
      name: "out",
      arg: "DIR",
      help: "output directory: last/, best/ (model directories), log.jsonl, args.json; " +
        "refused when it already holds a run (any of these), so nothing is overwritten. " +
        "While a run uses it, DIR/.lock names its pid; a second run on DIR is refused",
    },
    {
      name: "resume",
      help: "continue the run in --out from last/ (same flags and data); a save interrupted " +
        "mid-way (last.old/) is recovered",
    },
    {
      name: "break-lock",
      help: "take over a stale DIR/.lock (its run no longer runs on this host); never a live " +
        "one, nor one of another host",
    },
    {
      name: "stop-after",
      arg: "N",
      help: "stop after N steps of this invocation, saving last/ (then --resume)",
    },
    { name: "quiet", help: "no progress bar" },
    { name: "help", help: "this text" },
  ]],
];

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** A flag's help text with its default, read from `defaults`. */
function flagHelp(f: Flag, defaults: TrainDefaults): string {
  const value = f.option !== undefined
    ? defaults[f.option]
    : f.data !== undefined
    ? DATA_DEFAULTS[f.data]
    : undefined;
  if (value === undefined) return f.help;
  const shown = (f.show ?? String)(value);
  return f.help.includes("{d}") ? f.help.replace("{d}", shown) : `${f.help} (default ${shown})`;
}

/**
 * The `--help` text; every default shown is read from `defaults` (the training options') or
 * from the data flags' defaults, so it cannot drift from what `train` does.
 *
 * @example
 * ```ts
 * console.log(helpText());
 * ```
 */
export function helpText(defaults: TrainDefaults = DEFAULT_TRAIN_OPTIONS): string {
  const out = [
    "deno task train — fine-tune a bi-encoder (self-distillation with relevance margins)",
    "",
    "  deno task train --data DIR --out DIR [options]              (BEIR directory, " +
    "qrels/train.tsv)",
    "  deno task train --triples FILE --queries FILE --collection FILE [--qrels FILE] " +
    "--out DIR ...",
    "                                                              (MS MARCO TSV files)",
  ];
  for (const [title, flags] of SECTIONS) {
    out.push("", `${title}:`);
    for (const f of flags) {
      const name = (f.name === "help" ? "-h, --help" : `--${f.name}`) + (f.arg ? ` ${f.arg}` : "");
      const [first, ...rest] = wrap(flagHelp(f, defaults), 100 - 24);
      out.push(`  ${name.padEnd(21)} ${first}`, ...rest.map((l) => " ".repeat(24) + l));
    }
  }
  return out.join("\n");
}

/** `arg` as a POSIX shell reads it back (quoted when it needs to be). */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'"'"'`)}'`;
}

function fail(message: string): never {
  console.error(`train: ${message}`);
  Deno.exit(2);
}

/** `v` as a number (an integer with `int`), or undefined when absent; else exits naming `name`. */
function num(v: string | undefined, name: string, int = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) {
    fail(`${name} expects ${int ? "an integer" : "a number"}, got '${v}'`);
  }
  return n;
}

/** Every flag of {@link SECTIONS}, as `parseArgs` options. */
function parseOptions() {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [, flags] of SECTIONS) {
    for (const f of flags) {
      options[f.name] = { type: f.arg ? "string" : "boolean" };
      if (f.name === "help") options[f.name].short = "h";
    }
  }
  return options;
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: Deno.args, options: parseOptions(), allowPositionals: false })
      .values;
  } catch (e) {
    fail(`${(e as Error).message} (see --help)`);
  }
  // Flags by name; an absent one is undefined, so the training options' defaults apply.
  const str = (name: string) => values[name] as string | undefined;
  const on = (name: string) => values[name] === true;
  const int = (name: string) => num(str(name), `--${name}`, true);
  if (on("help")) {
    console.log(helpText());
    return;
  }
  const out = str("out");
  if (!out) fail("--out DIR is required");
  const loss = str("loss") as LossKind | undefined;
  if (loss !== undefined && !LOSS_KINDS.includes(loss)) {
    fail(`--loss must be ${LOSS_KINDS.join(", ")}, got '${loss}'`);
  }
  const schedule = str("schedule") as ScheduleKind | undefined;
  if (schedule !== undefined && !(SCHEDULE_KINDS as readonly string[]).includes(schedule)) {
    fail(`--schedule must be ${SCHEDULE_KINDS.join(", ")}, got '${schedule}'`);
  }
  const error = str("error") as MarginError | undefined;
  if (error !== undefined && !["l1", "l2", "soft"].includes(error)) {
    fail(`--error must be l1, l2 or soft`);
  }
  const targetArg = str("target");
  const target = targetArg === undefined || targetArg === "adaptive" ||
      targetArg === "distributed"
    ? targetArg
    : num(targetArg, "--target");
  const seed = int("seed") ?? DEFAULT_TRAIN_OPTIONS.seed;
  const valArg = num(str("val-queries"), "--val-queries") ?? DATA_DEFAULTS.valQueries;
  const validationSpec = validationSplit(valArg);
  const valDepth = int("val-depth") ?? DATA_DEFAULTS.valDepth;
  const negativesPerPositive = int("negatives-per-positive");
  if (negativesPerPositive !== undefined && negativesPerPositive < 1) {
    fail(`--negatives-per-positive must be a positive integer (got ${negativesPerPositive})`);
  }
  const say = (m: string) => console.error(m);
  // Absent flags are undefined: train fills in DEFAULT_TRAIN_OPTIONS. Every value is checked
  // here, before the output directory, the data or the model is touched.
  const flagOptions: TrainOptions = {
    loss,
    target,
    inBatch: on("in-batch"),
    inBatchIndexing: on("per-query") ? "per-query" : undefined,
    error,
    detachTarget: on("detach-target"),
    infonceScale: num(str("scale"), "--scale"),
    batchSize: int("batch-size"),
    chunkSize: int("chunk-size"),
    queryLength: int("query-length"),
    docLength: int("doc-length"),
    lr: num(str("lr"), "--lr"),
    weightDecay: num(str("weight-decay"), "--weight-decay"),
    schedule,
    gamma: num(str("gamma"), "--gamma"),
    warmup: int("warmup"),
    maxGradNorm: num(str("clip"), "--clip"),
    maxSteps: int("max-steps"),
    epochs: int("epochs"),
    evalEvery: int("eval-every"),
    patience: int("patience"),
    seed,
    outDir: out,
    stopAfter: int("stop-after"),
  };
  let modelOptions: ReturnType<typeof modelFlagOptions> = {};
  try {
    checkTrainOptions(flagOptions);
    modelOptions = modelFlagOptions({
      pooling: str("pooling"),
      "query-prompt": str("query-prompt"),
      "document-prompt": str("document-prompt"),
    });
  } catch (e) {
    fail((e as Error).message);
  }
  // Refuse a used or locked --out before loading data; the lock is held until the end.
  await checkOutDir(out, on("resume"));
  await using lock = await lockDir(out, {
    breakStale: on("break-lock"),
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
  const triplesPath = str("triples"), qrelsPath = str("qrels");
  if (triplesPath) {
    const queries = str("queries"), collection = str("collection");
    if (!queries || !collection) {
      fail("--triples needs --queries and --collection (ids), or use text triples without them");
    }
    const ms = await loadMsMarcoTraining({
      triples: triplesPath,
      queries,
      collection,
      qrels: qrelsPath,
      validation: qrelsPath ? validationSpec : undefined,
      seed,
      limit: int("max-triples"),
    });
    triples = ms.triples;
    corpus = ms.corpus;
    validation = ms.validation;
    if (!qrelsPath) say("no --qrels: training without validation");
  } else {
    const dir = await resolveDataset(str("dataset") ?? DATA_DEFAULTS.dataset, {
      data: str("data"),
    });
    const built = await beirTrainingTriples(dir, {
      validation: validationSpec,
      seed,
      negatives: negativeSource(str("negatives"), int("bm25-depth")),
      negativesPerPositive: negativesPerPositive ?? DATA_DEFAULTS.negativesPerPositive,
      log: say,
    });
    ({ corpus, validation, bm25, triples } = built);
  }
  let teacher: { pos: Float32Array; neg: Float32Array } | undefined;
  if (loss === "margin-mse") {
    const teacherPath = str("teacher");
    if (!teacherPath) fail("--loss margin-mse needs --teacher FILE");
    teacher = teacherScoresFor(triples, await readTeacherScores(teacherPath));
  }
  const val = validation
    ? validationData(corpus, validation, valDepth, bm25 ?? Bm25Index.build(corpus))
    : undefined;
  say(`data ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // ---- model and training -------------------------------------------------------------------
  const gpu = await getGpu();
  const modelName = str("model") ?? DATA_DEFAULTS.model;
  const model = await loadEncoder(gpu, modelName, modelOptions);
  for (const note of model.notes ?? []) say(`note: ${note}`);
  const opts: TrainOptions = {
    ...flagOptions,
    card: {
      baseModel: modelName,
      command: ["deno task train", ...Deno.args.map(shellQuote)].join(" "),
      data: `${triples.length} training triples` +
        (triplesPath ? ` from ${triplesPath}` : ` from ${str("dataset") ?? DATA_DEFAULTS.dataset}`),
    },
    resume: on("resume"),
    lock,
    // args.json: written by train once a fresh run is accepted, never by a refused one.
    args: { args: Deno.args, seed, adapter: gpu.adapterName },
    onEvent: trainProgress({ silent: on("quiet") }),
    log: say,
  };
  const { docLength, queryLength } = withTrainDefaults(opts);
  if (docLength > model.maxLength || queryLength > model.maxLength) {
    say(`lengths clamped to the model's maximum of ${model.maxLength} tokens`);
  }
  const result = await train(gpu, model, { triples, teacher, validation: val }, opts);
  const s = result.state;
  console.log(JSON.stringify({
    out,
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

/**
 * `deno task teacher`: scores every training triple with a teacher and writes the teacher file
 * that `deno task train --loss margin-mse --teacher FILE` reads. The triples are built exactly as
 * `deno task train` builds them from the same data flags (dataset, negatives, negatives per
 * positive, validation carve, seed), so every triple the trainer draws has its scores.
 * `--help` lists everything.
 *
 * @module
 */
import {
  checkInputFile,
  checkModelSpec,
  checkOutputFile,
  loadModelForCli,
  parseCliArgs,
  positiveIntFlag,
  runCli,
  UsageError,
} from "../src/cli/cli_checks.ts";
import { formatDuration, ProgressBar } from "../src/cli/progress.ts";
import { resolveDataset } from "../src/data/resolve.ts";
import { getGpu } from "../src/gpu/device.ts";
import { loadCrossEncoder } from "../src/models/cross_encoder.ts";
import {
  crossEncoderTeacher,
  encoderTeacher,
  meanTeacher,
  type Teacher,
  writeTeacherFile,
} from "../src/study/teacher.ts";
import { beirTrainingTriples } from "../src/train/data.ts";
import { DATA_DEFAULTS, negativeSource, validationSplit } from "./train.ts";

const HELP = `deno task teacher — score training triples with a teacher, for Margin-MSE

  deno task teacher --teacher KIND:MODEL [--teacher KIND:MODEL ...] --data DIR --out FILE
                    [data flags as deno task train]

Teachers (--teacher, repeatable; two or more are averaged after z-normalising each):
  encoder:MODEL        cosine of an encoder's embeddings (use-lite, a model directory, org/name)
  cross-encoder:DIR    the logit of a BERT cross-encoder (BertForSequenceClassification with one
                       label, e.g. a local copy of cross-encoder/ms-marco-MiniLM-L-6-v2)

Data (the same flags and defaults as deno task train, so the triples are the trainer's):
  --data DIR                   BEIR dataset directory (or one holding <dataset>/)
  --dataset NAME               dataset name for resolution (default ${DATA_DEFAULTS.dataset})
  --negatives SRC              bm25 | random | FILE (default ${DATA_DEFAULTS.negatives})
  --bm25-depth N               BM25 negatives from the top N (default ${DATA_DEFAULTS.bm25Depth})
  --negatives-per-positive K   negatives per (query, positive) pair (default ${DATA_DEFAULTS.negativesPerPositive})
  --val-queries N              validation queries carved from train, as train (default ${DATA_DEFAULTS.valQueries})
  --seed N                     the trainer's seed (default 1)

Output and scoring:
  --out FILE                   the teacher file (JSON Lines {"qid","pos","neg","score_pos",
                               "score_neg"}); replaced only once complete
  --batch-size N               texts or pairs per GPU batch (default 64 / 32)
  --max-length N               longest input in tokens (default the model's)
  --quiet                      no progress bars
  -h, --help                   this text

Exit status: 0 done, 2 bad flags or input (one line on stderr), 1 failure while scoring.`;

/** A parsed `--teacher KIND:MODEL`. */
interface TeacherFlag {
  kind: "encoder" | "cross-encoder";
  model: string;
}

function parseTeacherFlag(v: string): TeacherFlag {
  const at = v.indexOf(":");
  const kind = at < 0 ? "" : v.slice(0, at), model = at < 0 ? "" : v.slice(at + 1);
  if ((kind !== "encoder" && kind !== "cross-encoder") || model === "") {
    throw new UsageError(
      `--teacher takes encoder:MODEL or cross-encoder:DIR, got '${v}' (see --help)`,
    );
  }
  return { kind, model };
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      teacher: { type: "string", multiple: true },
      data: { type: "string" },
      dataset: { type: "string" },
      negatives: { type: "string" },
      "bm25-depth": { type: "string" },
      "negatives-per-positive": { type: "string" },
      "val-queries": { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      "batch-size": { type: "string" },
      "max-length": { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  // Every flag is checked before anything loads.
  const teachers = (v.teacher ?? []).map(parseTeacherFlag);
  if (teachers.length === 0) throw new UsageError("--teacher KIND:MODEL is required (see --help)");
  for (const t of teachers) {
    if (t.kind === "encoder") await checkModelSpec("--teacher", t.model);
    else await checkInputFile("--teacher", `${t.model}/config.json`);
  }
  if (!v.out) throw new UsageError("--out FILE is required (see --help)");
  await checkOutputFile("--out", v.out);
  const bm25Depth = positiveIntFlag("--bm25-depth", v["bm25-depth"]);
  const perPositive = positiveIntFlag("--negatives-per-positive", v["negatives-per-positive"]);
  const batchSize = positiveIntFlag("--batch-size", v["batch-size"]);
  const maxLength = positiveIntFlag("--max-length", v["max-length"]);
  const seedArg = v.seed ?? "1";
  const seed = Number(seedArg);
  if (!Number.isSafeInteger(seed)) {
    throw new UsageError(`--seed must be an integer (got ${seedArg})`);
  }
  const valArg = v["val-queries"] === undefined ? undefined : Number(v["val-queries"]);
  if (valArg !== undefined && !(Number.isFinite(valArg) && valArg >= 0)) {
    throw new UsageError(`--val-queries must be a number >= 0 (got ${v["val-queries"]})`);
  }
  const say = (m: string) => console.error(m);

  const dir = await resolveDataset(v.dataset ?? DATA_DEFAULTS.dataset, { data: v.data }).catch(
    (e) => {
      throw new UsageError((e as Error).message);
    },
  );
  const data = await beirTrainingTriples(dir, {
    validation: validationSplit(valArg),
    seed,
    negatives: negativeSource(v.negatives, bm25Depth),
    negativesPerPositive: perPositive ?? DATA_DEFAULTS.negativesPerPositive,
    log: say,
  });
  const gpu = await getGpu();
  const members: Teacher[] = [];
  for (const t of teachers) {
    if (t.kind === "encoder") {
      const model = await loadModelForCli(gpu, t.model, { maxLength });
      members.push(encoderTeacher(gpu, model, t.model, { batchSize, maxLength }));
    } else {
      const ce = await loadCrossEncoder(gpu, t.model, { maxLength });
      members.push(crossEncoderTeacher(gpu, ce, t.model, { batchSize, maxLength }));
    }
  }
  const teacher = members.length === 1 ? members[0] : meanTeacher(members);
  let bar: ProgressBar | null = null;
  const t0 = performance.now();
  const scores = await teacher.score(data.triples, (done, total) => {
    bar ??= new ProgressBar("teacher", { total, unit: "items", silent: v.quiet });
    bar.update(done);
    if (done >= total) {
      bar.finish();
      bar = null;
    }
  });
  await writeTeacherFile(v.out, data.triples, scores);
  const seconds = (performance.now() - t0) / 1000;
  say(
    `teacher: ${teacher.name}: ${data.triples.length} triples scored in ${
      formatDuration(seconds)
    } ` +
      `(${seconds.toFixed(1)} s); wrote ${v.out}`,
  );
  console.log(
    JSON.stringify({ out: v.out, teacher: teacher.name, triples: data.triples.length, seconds }),
  );
}

if (import.meta.main) await runCli("teacher", () => main(Deno.args));

/**
 * `deno task study`: runs a study (a grid of training arms x seeds x data budgets, see
 * src/study/spec.ts) and reports the paper's claims. `--help` lists everything.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { knownErrorExitCode, UsageError } from "../src/cli/cli_checks.ts";
import { getGpu } from "../src/gpu/device.ts";
import { PRESET_NAMES, studyPreset } from "../src/study/presets.ts";
import { studyConditions, writeStudyReport } from "../src/study/report.ts";
import { runStudy, StudyRunConflictError } from "../src/study/run.ts";
import type { StudyData } from "../src/study/run.ts";
import {
  checkStudyFiles,
  readStudySpec,
  type StudySpec,
  StudySpecError,
} from "../src/study/spec.ts";
import { LockError } from "../src/util/lock.ts";

const HELP = `deno task study — run a study's grid of training arms and report the paper's claims

Usage: deno task study (--spec FILE.json | --preset ${
  PRESET_NAMES.join("|")
}) --out DIR [--data DIR]

Every run (arm x sweep margin x budget x seed) trains from the base model on its nested share
of the training triples (BM25 negatives, or those of training.negatives), validates on queries
carved from train, and is evaluated on the test split from its best validation checkpoint,
whose model card (README.md) then gets the test measures. Runs live in DIR/runs/<key>/ (the
key hashes the run's settings, a mean teacher's members included): a finished run is skipped,
an interrupted one resumed, and a run whose directory holds other settings is refused.
Margin-MSE teachers score the triples once (DIR/teachers/). At the end: DIR/results.json
(arms, tost, data_efficiency, time_ratio, verdicts, budget_curve, conditions), DIR/report.md,
DIR/validation_vs_triples.svg, DIR/validation_vs_seconds.svg and DIR/budget_curve.svg.

Options:
  --spec FILE     a study spec (JSON; its keys below)
  --preset NAME   a built-in study: tiny (a SciFact slice, a few steps: a smoke test) or
                  scifact (full SciFact, USE-lite, every arm at its own learning rate
                  chosen on validation, one seed, budgets 0.25 and 1; about 2 hours from
                  scratch on a 2-core CPU; see docs/study_scifact/README.md)
  --out DIR       output directory (required)
  --data DIR      where the dataset is (the dataset directory, or one holding it); default
                  $SELFMARGIN_DATA_DIR/<dataset>, else the cache
  -h, --help      this text

Spec keys (defaults in brackets; each is documented in src/study/spec.ts, StudySpec):
  dataset         a BEIR directory or a dataset name (required)
  model           the base model every arm starts from [use-lite]
  load.pooling    cls|mean|max|lasttoken|pooler instead of the model's [the model's]
  load.prompts    {"query": "...", "document": "..."} instead of the model's prompts
  training        shared settings: batchSize [32], lr [1e-5], queryLength [32],
                  docLength [128], maxSteps [1000] (capped at one epoch of the budget),
                  validateEvery [20], patience [16] (validations without improvement),
                  negativesPerPositive [8] (BM25 negatives per query-positive pair),
                  validationQueries [40] (carved from train; 0: none),
                  chunkSize [whole batch] (triples encoded at once, GradCache),
                  negatives [none] (a file of mined negatives, deno task mine JSON lines or
                  "qid pos neg" lines, instead of BM25 draws; checked before anything runs,
                  its content hashed into every run's key)
  seeds           training seeds, each arm runs once per seed and budget (required)
  budgets         fractions in (0, 1] of the training triples, nested (default [1])
  dataSeed        seed of the budget permutation, the validation split, the BM25
                  negatives and a preset's data slice [1]
  arms            [{name, kind, ...}] (required), kind one of:
                    margin: target "adaptive" | "distributed" | a number
                    static-sweep: margins [numbers]
                      (both: inBatch [false], inBatchIndexing reference|per-query
                      [reference], detachTarget [false], error l1|l2|soft [l2])
                    margin-mse: teacher (a name under teachers)
                    infonce: scale [20]
                  every arm may also set training {batchSize, lr, queryLength, docLength,
                  maxSteps, validateEvery, patience}: its own over the shared settings
                  (a teacher the study trains keeps the shared ones)
  teachers        {name: {kind, ...}}, kind one of: encoder {model} (cosine),
                  cross-encoder {model} (logit), mean {of: [names]} (z-normalised mean),
                  trained {scale [20], docLength, maxSteps} (the base model trained by the
                  study with InfoNCE on every triple; shared settings by default)
  reference       the arm the self-distillation arms are compared with [the first
                  margin-mse arm]
  tostMargin      TOST equivalence margin on per-query nDCG@10 [0.02]

Exit status: 0 done; 2 bad flags or spec (nothing trains; an unreadable or malformed
training.negatives file included), a run whose settings differ, or a locked DIR; 1 failure
while running.`;

const say = (msg: string) => console.error(`study: ${msg}`);

async function main(argv: string[]): Promise<void> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        spec: { type: "string" },
        preset: { type: "string" },
        out: { type: "string" },
        data: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see --help)`);
  }
  if (v.help) {
    console.log(HELP);
    return;
  }
  if ((v.spec === undefined) === (v.preset === undefined)) {
    throw new UsageError("give one of --spec FILE or --preset NAME (see --help)");
  }
  if (!v.out) throw new UsageError("--out DIR is required (see --help)");
  let spec: StudySpec, studyData: StudyData = {}, label: string;
  if (v.preset !== undefined) {
    const p = studyPreset(v.preset);
    if (!p) {
      throw new UsageError(
        `--preset: no preset '${v.preset}' (have ${PRESET_NAMES.join(", ")})`,
      );
    }
    spec = p.spec;
    studyData = p.data;
    label = `preset ${v.preset}`;
  } else {
    try {
      spec = await readStudySpec(v.spec!);
    } catch (e) {
      if (e instanceof StudySpecError) throw new UsageError(e.message);
      throw e;
    }
    label = v.spec!;
  }
  // The files the spec names, before the GPU, the output directory or any training.
  try {
    await checkStudyFiles(spec, label);
  } catch (e) {
    if (e instanceof StudySpecError) throw new UsageError(e.message);
    throw e;
  }
  const out = v.out;
  const start = new Date();
  const t0 = performance.now();
  const gpu = await getGpu();
  say(`WebGPU adapter: ${gpu.adapterName}; output in ${out}`);
  let runs;
  try {
    runs = await runStudy(gpu, spec, {
      out,
      data: v.data,
      studyData,
      log: say,
      command: ["deno task study", ...argv].join(" "),
      onEvent: (_run, e) => {
        if (e.type === "validation") {
          say(`  step ${e.step}: validation nDCG@10 ${e.ndcg10.toFixed(4)}`);
        }
      },
    });
  } catch (e) {
    if (e instanceof StudyRunConflictError || e instanceof LockError) {
      throw new UsageError(e.message);
    }
    throw e;
  }
  const conditions = await studyConditions(gpu, {
    start,
    end: new Date(),
    runsTrained: runs.trained.length,
  });
  const r = await writeStudyReport(out, spec, runs, conditions);
  for (const verdict of Object.values(r.verdicts)) say(`${verdict.claim}: ${verdict.status}`);
  say(
    `done in ${((performance.now() - t0) / 1000).toFixed(0)} s (${runs.trained.length} runs ` +
      `trained, ${runs.results.size - runs.trained.length} skipped): ${out}/report.md`,
  );
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    const code = knownErrorExitCode(e);
    console.error(`study: ${(e as Error).message}`);
    Deno.exit(code ?? 1);
  }
}

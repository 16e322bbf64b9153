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
import { writeStudyReport } from "../src/study/report.ts";
import { runStudy, StudyRunConflictError } from "../src/study/run.ts";
import type { StudyData } from "../src/study/run.ts";
import { readStudySpec, type StudySpec, StudySpecError } from "../src/study/spec.ts";
import { LockError } from "../src/util/lock.ts";

const HELP = `deno task study — run a study's grid of training arms and report the paper's claims

Usage: deno task study (--spec FILE.json | --preset ${
  PRESET_NAMES.join("|")
}) --out DIR [--data DIR]

Every run (arm x sweep margin x budget x seed) trains from the base model on its nested share
of the training triples (BM25 negatives), validates on queries carved from train, and is
evaluated on the test split from its best validation checkpoint. Runs live in DIR/runs/<key>/
(the key hashes the run's settings): a finished run is skipped, an interrupted one resumed,
and a run whose directory holds other settings is refused. Margin-MSE teachers score the
triples once (DIR/teachers/). At the end: DIR/results.json (arms, tost, data_efficiency,
time_ratio, verdicts), DIR/report.md, DIR/validation_vs_triples.svg and
DIR/validation_vs_seconds.svg.

Options:
  --spec FILE     a study spec (JSON; see src/study/spec.ts)
  --preset NAME   a built-in study: tiny (a SciFact slice, a few steps: a smoke test) or
                  scifact (full SciFact, 3 seeds; its settings are guesses to tune on validation)
  --out DIR       output directory (required)
  --data DIR      where the dataset is (the dataset directory, or one holding it); default
                  $SELFMARGIN_DATA_DIR/<dataset>, else the cache
  -h, --help      this text

Exit status: 0 done; 2 bad flags or spec (nothing trains), a run whose settings differ, or a
locked DIR; 1 failure while running.`;

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
  let spec: StudySpec, studyData: StudyData = {};
  if (v.preset !== undefined) {
    const p = studyPreset(v.preset);
    if (!p) {
      throw new UsageError(
        `--preset: no preset '${v.preset}' (have ${PRESET_NAMES.join(", ")})`,
      );
    }
    spec = p.spec;
    studyData = p.data;
  } else {
    try {
      spec = await readStudySpec(v.spec!);
    } catch (e) {
      if (e instanceof StudySpecError) throw new UsageError(e.message);
      throw e;
    }
  }
  const out = v.out;
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
  const r = await writeStudyReport(out, spec, runs);
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

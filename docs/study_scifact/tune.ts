/**
 * The per-arm learning-rate choice behind the scifact preset (docs/study_scifact/tuning.json):
 * each arm of the preset at budget 1, seed 1, with the preset's data preparation and shared
 * settings, trained at the learning rates asked for (as the arm's own `training.lr`, so a trained
 * teacher keeps the shared settings); the best validation nDCG@10 of each run (40 train queries
 * carved out, BM25 top 15 re-ranked; never test) is what the choice reads. A static sweep is
 * tuned at one of its margins (`static-sweep@0.3`). Runs go to OUT/runs/<key> exactly as the
 * study's own, so `deno task study --preset scifact --out OUT` afterwards reuses the budget-1
 * runs of the chosen rates instead of training them again. Run from the repository root:
 *
 *   SELFMARGIN_DATA_DIR=../shared/datasets deno run -A docs/study_scifact/tune.ts OUT \
 *     infonce:1e-4 infonce:3e-4 adaptive:3e-4 static-sweep@0.3:3e-4 ... > tuning-runs.json
 *
 * Finished runs are skipped, so a rerun with every item prints the whole table at once.
 *
 * @module
 */
import { getGpu } from "../../src/gpu/device.ts";
import { studyPreset } from "../../src/study/presets.ts";
import { ledgerLine } from "../../src/study/analysis.ts";
import { runStudy } from "../../src/study/run.ts";
import { type ArmSpec, parseStudySpec } from "../../src/study/spec.ts";

const [out, ...items] = Deno.args;
if (!out || items.length === 0 || out === "--help" || out === "-h") {
  console.error("usage: deno run -A docs/study_scifact/tune.ts OUT ARM[@MARGIN]:LR ...");
  Deno.exit(out === "--help" || out === "-h" ? 0 : 2);
}
const preset = studyPreset("scifact")!;
const gpu = await getGpu();
const rows = [];
for (const item of items) {
  const m = /^([a-z-]+)(?:@([0-9.]+))?:([0-9.e-]+)$/.exec(item);
  const base = m && preset.spec.arms.find((a) => a.name === m[1]);
  if (!m || !base || (m[2] !== undefined) !== (base.kind === "static-sweep")) {
    throw new Error(`${item}: expected ARM:LR, or static-sweep@MARGIN:LR, with an arm of the preset`);
  }
  const lr = Number(m[3]);
  const arm = {
    ...base,
    ...(base.kind === "static-sweep" ? { margins: [Number(m[2])] } : {}),
    training: { ...base.training, lr },
  } as ArmSpec;
  const { reference: _, ...rest } = preset.spec;
  const spec = parseStudySpec({ ...rest, budgets: [1], arms: [arm] }, `tune ${item}`);
  const t0 = performance.now();
  const runs = await runStudy(gpu, spec, {
    out,
    studyData: preset.data,
    log: (msg) => console.error(`${item}: ${msg}`),
  });
  for (const plan of runs.plans) {
    const r = runs.results.get(plan.key)!;
    const line = ledgerLine(r.cost);
    rows.push({
      arm: plan.arm,
      sweepValue: plan.sweepValue,
      lr,
      run: plan.key,
      bestValidationNdcg10: line.bestNdcg10,
      bestStep: line.bestStep,
      steps: line.steps,
      stopReason: r.stopReason,
      curve: r.cost.curve.map((p) => ({ step: p.step, ndcg10: p.ndcg10 })),
      testNdcg10NotUsedForChoice: r.test.ndcg_cut_10,
    });
  }
  console.error(`${item}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
console.log(JSON.stringify(rows, null, 2));

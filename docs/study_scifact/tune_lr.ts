/**
 * The learning-rate check behind docs/study_scifact/tuning.json: the scifact preset's adaptive and
 * distributed arms at budget 1, seed 1, with its data preparation, for learning rates 3e-5, 1e-4
 * (the preset's) and 3e-4; the best validation nDCG@10 of each run (never test) is what a choice
 * would read. Run from the repository root:
 *
 *   SELFMARGIN_DATA_DIR=../shared/datasets deno run -A docs/study_scifact/tune_lr.ts OUTDIR
 *
 * @module
 */
import { getGpu } from "../../src/gpu/device.ts";
import { studyPreset } from "../../src/study/presets.ts";
import { ledgerLine } from "../../src/study/analysis.ts";
import { runStudy } from "../../src/study/run.ts";
import { parseStudySpec } from "../../src/study/spec.ts";

const out = Deno.args[0];
if (!out) throw new Error("usage: deno run -A docs/study_scifact/tune_lr.ts OUTDIR");
const preset = studyPreset("scifact")!;
const gpu = await getGpu();
const rows = [];
for (const lr of [3e-5, 1e-4, 3e-4]) {
  const spec = parseStudySpec({
    dataset: preset.spec.dataset,
    model: preset.spec.model,
    training: { ...preset.spec.training, lr },
    seeds: [1],
    budgets: [1],
    dataSeed: preset.spec.dataSeed,
    arms: [
      { name: "adaptive", kind: "margin", target: "adaptive" },
      { name: "distributed", kind: "margin", target: "distributed" },
    ],
  }, `tune lr ${lr}`);
  const t0 = performance.now();
  const runs = await runStudy(gpu, spec, {
    out: `${out}/lr-${lr}`,
    studyData: preset.data,
    log: (m) => console.error(`lr ${lr}: ${m}`),
  });
  for (const [key, r] of runs.results) {
    const line = ledgerLine(r.cost);
    rows.push({
      lr,
      arm: r.arm,
      run: key,
      bestValidationNdcg10: line.bestNdcg10,
      bestStep: line.bestStep,
      steps: line.steps,
      curve: r.cost.curve.map((p) => ({ step: p.step, ndcg10: p.ndcg10 })),
    });
  }
  console.error(`lr ${lr}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
console.log(JSON.stringify(rows, null, 2));

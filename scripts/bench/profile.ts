/**
 * The `profile` bench section (`deno task bench --only profile`): where the time of one
 * training step and of one encode batch goes, op family by op family.
 *
 * The training step is the `train` section's (USE-lite, 32 SciFact triples with random negatives,
 * query 32 / document 128 tokens, adaptive margin loss, backward, gradient norm, AdamW); the
 * encode batch is 64 SciFact documents at up to 128 tokens through {@link embedBatch}. Each runs
 * once untimed (pipeline compilation), then once under the profiler ({@link startProfile}): every
 * kernel launch timed on the GPU clock (`timestamp-query`) and attributed to its kernel file and
 * phase (forward, backward, optimizer), plus the launches, queue submits, read-backs and waits of
 * the step. Without `timestamp-query` only the counts are given. Each launch runs in a compute
 * pass of its own while profiling, so the profiled wall time is a little above the unprofiled one
 * (both are reported).
 *
 * Result key: `profile: { train: Report, encode: Report }` with `Report = { wallMs,
 * unprofiledWallMs, gpuMs, timing, counters: { dispatches, submits, readbacks, waits }, rows: [{
 * phase, family, dispatches, gpuMs, entries: [{ entry, dispatches, gpuMs }] }] }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { type ProfileReport, startProfile } from "../../src/gpu/profile.ts";
import { docText } from "../../src/data/types.ts";
import { embedBatch, padBatch, tokenizeAll } from "../../src/models/encode.ts";
import { loadEncoder } from "../../src/models/load.ts";
import { trainStep } from "../../src/train/trainer.ts";
import { loadTrainBatches, TRAIN_STEP, trainStepContext } from "./train_setup.ts";

const DOC = TRAIN_STEP.docLength, ENCODE_BATCH = 64;

/** A profile report with the wall time of the same work run without the profiler. */
export type SectionReport = ProfileReport & { unprofiledWallMs: number };

/** Runs the section (registered in scripts/bench.ts as `profile`). */
export async function profileSection(ctx: BenchContext): Promise<void> {
  const { gpu, log } = ctx;
  const { corpus, batchAt } = await loadTrainBatches();
  const model = await loadEncoder(gpu, "use-lite");
  const stepCtx = trainStepContext(gpu, model);
  const optimizer = stepCtx.optimizer;
  try {
    const step = (i: number) => trainStep(stepCtx, batchAt(i), undefined, TRAIN_STEP.lr);
    const train = await measure(gpu, () => step(0), () => step(1), () => step(2));
    log(formatReport("training step (32 triples, q32/d128)", train));
    const docs = corpus.slice(0, 3 * ENCODE_BATCH).map(docText);
    const batch = (i: number) => {
      const texts = docs.slice(i * ENCODE_BATCH, (i + 1) * ENCODE_BATCH);
      const { ids } = tokenizeAll(model.tokenizer, texts, Math.min(DOC, model.maxLength));
      return embedBatch(gpu, model, padBatch(ids, model.config.padId));
    };
    const encode = await measure(gpu, () => batch(0), () => batch(1), () => batch(2));
    log(formatReport(`encode batch (${ENCODE_BATCH} documents, <= ${DOC} tokens)`, encode));
    ctx.result.profile = { train, encode };
  } finally {
    optimizer.destroy();
    for (const t of model.named.values()) t.destroy();
  }
}

/** Warm-up run, one run without the profiler (wall time), one run under it. */
async function measure(
  gpu: BenchContext["gpu"],
  warm: () => Promise<unknown>,
  plain: () => Promise<unknown>,
  profiled: () => Promise<unknown>,
): Promise<SectionReport> {
  await warm();
  const t0 = performance.now();
  await plain();
  const unprofiledWallMs = performance.now() - t0;
  const profiler = startProfile(gpu);
  await profiled();
  const report = await profiler.stop();
  return { ...report, unprofiledWallMs };
}

/** The report as a table for the terminal. */
export function formatReport(title: string, r: SectionReport): string {
  const ms = (x: number | null) => x === null ? "-" : x.toFixed(1);
  const lines = [
    `profile: ${title}: wall ${r.wallMs.toFixed(0)} ms profiled, ` +
    `${r.unprofiledWallMs.toFixed(0)} ms unprofiled; GPU ${ms(r.gpuMs)} ms (${r.timing}); ` +
    `${r.counters.dispatches} dispatches, ${r.counters.submits} submits, ` +
    `${r.counters.readbacks} read-backs, ${r.counters.waits} waits`,
    `  ${"phase".padEnd(10)} ${"family".padEnd(14)} ${"launches".padStart(8)} ` +
    `${"GPU ms".padStart(9)} ${"share".padStart(6)}  top entry points`,
  ];
  for (const row of r.rows) {
    const share = r.gpuMs && row.gpuMs !== null ? `${(100 * row.gpuMs / r.gpuMs).toFixed(1)}%` : "";
    const top = row.entries.slice(0, 3).map((e) => `${e.entry} ${ms(e.gpuMs)}/${e.dispatches}`)
      .join(", ");
    lines.push(
      `  ${row.phase.padEnd(10)} ${row.family.padEnd(14)} ${String(row.dispatches).padStart(8)} ` +
        `${ms(row.gpuMs).padStart(9)} ${share.padStart(6)}  ${top}`,
    );
  }
  return lines.join("\n");
}

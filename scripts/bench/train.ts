/**
 * The `train` bench section (`deno task bench --only train`): real training steps of the
 * trainer ({@link trainStep}: tokenization, three USE-lite forwards on one tape, the adaptive
 * margin loss, backward, gradient norm, AdamW) on SciFact train triples (random negatives, so no
 * BM25 index is built), batch 32 triples, queries 32 and documents 128 tokens. The GPU is
 * synchronized between phases so each is timed alone: ms per step for forward (tokenization
 * included; reported separately too), backward (with the gradient norm) and optimizer; triples/s
 * of the whole step. One untimed step first (pipeline compilation); then `--iters` timed steps on
 * successive batches, the median reported with the min.
 *
 * The TF.js side-by-side comparison (tf.grad over the same model and loss) is not part of this
 * section yet.
 *
 * Result key: `train: { model, batchSize, queryLength, docLength, steps, forwardMs, backwardMs,
 * optimizerMs, stepMs, tokenizeMs, triplesPerSecond, min: {...} }`.
 *
 * @module
 */
import type { BenchContext } from "../bench.ts";
import { resolveDataset } from "../../src/data/resolve.ts";
import { tokenizeAll } from "../../src/models/encode.ts";
import { loadEncoder } from "../../src/models/load.ts";
import { beirTriples, loadBeirTraining } from "../../src/train/data.ts";
import { AdamW } from "../../src/train/optimizer.ts";
import { type StepTimings, trainStep } from "../../src/train/trainer.ts";

const B = 32, QUERY = 32, DOC = 128;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Runs the section (registered in scripts/bench.ts as `train`). */
export async function trainSection(ctx: BenchContext): Promise<void> {
  const { gpu, options, log } = ctx;
  // $SELFMARGIN_DATA_DIR or the cache, else this repository's sibling data directory.
  const dir = await resolveDataset("scifact").catch(() =>
    resolveDataset("scifact", { data: "../shared/datasets" })
  );
  const data = await loadBeirTraining(dir);
  const { triples } = await beirTriples(data.corpus, data.train, {
    negatives: { kind: "random" },
    seed: 1,
  });
  const model = await loadEncoder(gpu, "use-lite");
  const optimizer = new AdamW(model.named, { lr: 1e-6, weightDecay: 0 });
  const stepCtx = {
    gpu,
    model,
    optimizer,
    loss: "margin" as const,
    margin: {
      target: "adaptive" as const,
      inBatch: false,
      error: "l2" as const,
      detachTarget: false,
      inBatchIndexing: "reference" as const,
    },
    queryLength: QUERY,
    docLength: DOC,
    maxGradNorm: Infinity,
  };
  const steps = Math.max(1, options.iters);
  const timings: (StepTimings & { total: number; tokenize: number })[] = [];
  try {
    for (let i = 0; i < steps + options.warmup; i++) {
      const batch = triples.slice(
        (i * B) % (triples.length - B),
        (i * B) % (triples.length - B) + B,
      );
      const t0 = performance.now();
      tokenizeAll(model.tokenizer, batch.map((t) => t.query), QUERY);
      tokenizeAll(model.tokenizer, batch.flatMap((t) => [t.positive, t.negative]), DOC);
      const tokenize = performance.now() - t0;
      const r = await trainStep(stepCtx, batch, undefined, 1e-6, { time: true });
      const t = r.timings!;
      const total = t.forward + t.backward + t.optimizer;
      if (i >= options.warmup) timings.push({ ...t, total, tokenize });
      log(
        `train: step ${i + 1}${i < options.warmup ? " (warm-up)" : ""}: forward ` +
          `${t.forward.toFixed(0)} ms, backward ${t.backward.toFixed(0)} ms, optimizer ` +
          `${t.optimizer.toFixed(0)} ms, ${(B / (total / 1000)).toFixed(2)} triples/s`,
      );
    }
  } finally {
    optimizer.destroy();
    for (const t of model.named.values()) t.destroy();
  }
  const pick = (f: (x: (typeof timings)[number]) => number, agg: (xs: number[]) => number) =>
    r3(agg(timings.map(f)));
  const summary = (agg: (xs: number[]) => number) => ({
    forwardMs: pick((t) => t.forward, agg),
    backwardMs: pick((t) => t.backward, agg),
    optimizerMs: pick((t) => t.optimizer, agg),
    stepMs: pick((t) => t.total, agg),
    tokenizeMs: pick((t) => t.tokenize, agg),
  });
  const med = summary(median);
  ctx.result.train = {
    model: "use-lite",
    loss: "margin (adaptive target, l2)",
    batchSize: B,
    queryLength: QUERY,
    docLength: DOC,
    steps,
    ...med,
    triplesPerSecond: r3(B / (med.stepMs / 1000)),
    min: summary((xs) => Math.min(...xs)),
    notes: ["forwardMs includes tokenization (tokenizeMs)", "TF.js comparison not yet included"],
  };
}

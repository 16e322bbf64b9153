/**
 * What the `train`, `torch` and `profile` bench sections share, so the three time the same step
 * on the same data: the step's shape ({@link TRAIN_STEP}), SciFact's train triples with random
 * negatives (seed 1) cut into successive batches ({@link loadTrainBatches}), and the trainer's
 * step context for USE-lite with the adaptive margin loss ({@link trainStepContext}).
 *
 * @module
 */
import type { Gpu } from "../../src/gpu/device.ts";
import { resolveDataset } from "../../src/data/resolve.ts";
import type { Doc } from "../../src/data/types.ts";
import type { LoadedEncoder } from "../../src/models/hf.ts";
import { beirTriples, loadBeirTraining, type Triple } from "../../src/train/data.ts";
import { AdamW } from "../../src/train/optimizer.ts";
import type { StepContext } from "../../src/train/trainer.ts";

/** The benchmarked step: 32 triples, queries 32 and documents 128 tokens, AdamW at lr 1e-6. */
export const TRAIN_STEP = { batchSize: 32, queryLength: 32, docLength: 128, lr: 1e-6 } as const;

/** SciFact's training triples and the i-th batch of {@link TRAIN_STEP}'s size. */
export interface TrainBatches {
  /** The corpus the triples were drawn from. */
  corpus: Doc[];
  /** Every triple (random negatives, seed 1). */
  triples: Triple[];
  /** The i-th batch: successive slices, wrapping around. */
  batchAt: (i: number) => Triple[];
}

/** Loads SciFact ($SELFMARGIN_DATA_DIR, the cache, else ../shared/datasets) and its triples. */
export async function loadTrainBatches(): Promise<TrainBatches> {
  const dir = await resolveDataset("scifact").catch(() =>
    resolveDataset("scifact", { data: "../shared/datasets" })
  );
  const data = await loadBeirTraining(dir);
  const { triples } = await beirTriples(data.corpus, data.train, {
    negatives: { kind: "random" },
    seed: 1,
  });
  const B = TRAIN_STEP.batchSize;
  const batchAt = (i: number) => {
    const start = (i * B) % (triples.length - B);
    return triples.slice(start, start + B);
  };
  return { corpus: data.corpus, triples, batchAt };
}

/** The benchmarked loss: margins with the adaptive target, attached, l2, no in-batch terms. */
export const TRAIN_STEP_LOSS = {
  loss: "margin",
  margin: {
    target: "adaptive",
    inBatch: false,
    error: "l2",
    detachTarget: false,
    inBatchIndexing: "reference",
  },
} as const satisfies Pick<StepContext, "loss" | "margin">;

/**
 * The trainer's step context for `model`: the margin loss with the adaptive target (attached,
 * l2), no clipping, and a fresh AdamW (lr 1e-6, no weight decay) that the caller destroys.
 */
export function trainStepContext(gpu: Gpu, model: LoadedEncoder): StepContext {
  return {
    gpu,
    model,
    optimizer: new AdamW(model.named, { lr: TRAIN_STEP.lr, weightDecay: 0 }),
    ...TRAIN_STEP_LOSS,
    queryLength: TRAIN_STEP.queryLength,
    docLength: TRAIN_STEP.docLength,
    maxGradNorm: Infinity,
  };
}

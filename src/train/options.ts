/**
 * The options of a training run ({@link TrainOptions}), their one defaults object
 * ({@link DEFAULT_TRAIN_OPTIONS}, from which `deno task train --help` prints its defaults), and
 * the plan they resolve to for a set of triples ({@link planTraining}: checks, total steps, the
 * options a resume must match).
 *
 * @module
 */
import type { DirLock } from "../util/lock.ts";
import { DEFAULT_INFONCE_SCALE } from "../losses/infonce.ts";
import {
  type InBatchIndexing,
  type MarginError,
  type MarginTarget,
  resolveMarginOptions,
} from "../losses/margin.ts";
import { makeSchedule, type Schedule, type ScheduleSpec } from "./schedule.ts";
import type { TrainEventListener } from "./events.ts";

/** The training objectives. */
export type LossKind = "margin" | "margin-mse" | "infonce";

/** The objectives {@link LossKind} names, for checking and listing. */
export const LOSS_KINDS: readonly LossKind[] = Object.freeze(["margin", "margin-mse", "infonce"]);

/** The learning-rate schedules of a run. */
export type ScheduleKind = "constant" | "linear" | "exponential";

/**
 * Options of `train`. Every option with a default takes it from {@link DEFAULT_TRAIN_OPTIONS}
 * (an option given as `undefined` takes it too); the defaults follow the reference setup where
 * it has one.
 */
export interface TrainOptions {
  /** The objective. */
  loss?: LossKind;
  /** Margin target: "adaptive", "distributed" or a number. */
  target?: MarginTarget;
  /** Margin loss over every negative of the batch. */
  inBatch?: boolean;
  /** Margin error function. */
  error?: MarginError;
  /** Detach the margin target from the graph. */
  detachTarget?: boolean;
  /** In-batch indexing of the margin loss. */
  inBatchIndexing?: InBatchIndexing;
  /** InfoNCE logit scale. */
  infonceScale?: number;
  /** Triples per step. */
  batchSize?: number;
  /**
   * Triples encoded at once (GradCache: embeddings in chunks, the loss's gradient cached for the
   * whole batch, each chunk back-propagated from it): the same gradients, memory bounded by the
   * chunk. 0: the whole batch at once.
   */
  chunkSize?: number;
  /** Query length in tokens (clamped to the model's). */
  queryLength?: number;
  /** Document length in tokens (clamped to the model's). */
  docLength?: number;
  /** Peak learning rate. */
  lr?: number;
  /** AdamW's decoupled weight decay (0: Adam, as the reference). */
  weightDecay?: number;
  /** Learning-rate schedule. */
  schedule?: ScheduleKind;
  /** Warm-up steps. */
  warmup?: number;
  /** Per-step decay of the exponential schedule. */
  gamma?: number;
  /** Stop after this many steps in all (with `epochs`, whichever comes first). */
  maxSteps?: number;
  /** Passes over the triples (1 when `maxSteps` is absent, else unbounded). */
  epochs?: number;
  /** Validate (and save `last/`) every this many steps. */
  evalEvery?: number;
  /** Stop after this many validations without improvement. */
  patience?: number;
  /** Clip the global gradient norm to this (Infinity: measure only). */
  maxGradNorm?: number;
  /** Seed of the data order. */
  seed?: number;
  /** Output directory. */
  outDir: string;
  /** Continue the run in `outDir` from its `last/` checkpoint. */
  resume?: boolean;
  /**
   * Take over a stale lock of `outDir` (left by a run that no longer runs on this host).
   * Otherwise a stale lock is an error that says so.
   */
  breakLock?: boolean;
  /**
   * The lock of `outDir`, already taken by the caller (a CLI takes it before loading data, to
   * fail fast); `train` then neither takes nor releases it. Default: `train` takes it.
   */
  lock?: DirLock;
  /**
   * Written as `outDir/args.json` (pretty JSON) once a fresh run is accepted: after the lock
   * and the check that `outDir` holds no run. Never written by a refused or resumed run.
   */
  args?: unknown;
  /** Stop after this many steps of this invocation, saving `last/` (simulates an interruption). */
  stopAfter?: number;
  /** Receives the run's events (steps, validations, checkpoints, the stop); default none. */
  onEvent?: TrainEventListener;
  /**
   * What each checkpoint's model card (README.md) says beyond the options, steps and
   * validation curve: the base model (default the model's directory, or `use-lite`), the
   * command that trained it, the data.
   */
  card?: CheckpointCard;
  /** Notes (resume, recovery, stop); default none. */
  log?: (message: string) => void;
}

/** The parts of a checkpoint's model card the trainer cannot know ({@link TrainOptions.card}). */
export interface CheckpointCard {
  /** The model training started from. */
  baseModel?: string;
  /** The command that trained it. */
  command?: string;
  /** What it was trained on. */
  data?: string;
}

/** The options of {@link TrainOptions} that have a default. */
export type TrainDefaults = Required<
  Pick<
    TrainOptions,
    | "loss"
    | "target"
    | "inBatch"
    | "error"
    | "detachTarget"
    | "inBatchIndexing"
    | "infonceScale"
    | "batchSize"
    | "chunkSize"
    | "queryLength"
    | "docLength"
    | "lr"
    | "weightDecay"
    | "schedule"
    | "warmup"
    | "gamma"
    | "evalEvery"
    | "patience"
    | "maxGradNorm"
    | "seed"
    | "resume"
    | "breakLock"
  >
>;

/**
 * The defaults of {@link TrainOptions}, the one place they are written (`train` and the
 * `deno task train` CLI, whose `--help` prints them, both read them here).
 *
 * @example
 * ```ts
 * const opts = { ...DEFAULT_TRAIN_OPTIONS, outDir: "runs/x", lr: 1e-5 };
 * ```
 */
export const DEFAULT_TRAIN_OPTIONS: Readonly<TrainDefaults> = Object.freeze({
  loss: "margin",
  target: "adaptive",
  inBatch: false,
  error: "l2",
  detachTarget: false,
  inBatchIndexing: "reference",
  infonceScale: DEFAULT_INFONCE_SCALE,
  batchSize: 32,
  chunkSize: 0,
  queryLength: 20,
  docLength: 200,
  lr: 5e-7,
  weightDecay: 0,
  schedule: "constant",
  warmup: 0,
  gamma: 0.99999,
  evalEvery: 500,
  patience: 16,
  maxGradNorm: Infinity,
  seed: 1,
  resume: false,
  breakLock: false,
});

/** {@link TrainOptions} with every default filled in. */
export type ResolvedTrainOptions = TrainOptions & TrainDefaults;

/**
 * `opts` with {@link DEFAULT_TRAIN_OPTIONS} filled in where an option is absent or `undefined`.
 *
 * @example
 * ```ts
 * withTrainDefaults({ outDir: "runs/x", lr: undefined }).lr; // 5e-7
 * ```
 */
export function withTrainDefaults(opts: TrainOptions): ResolvedTrainOptions {
  const out: Record<string, unknown> = { ...DEFAULT_TRAIN_OPTIONS };
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) out[k] = v;
  return out as unknown as ResolvedTrainOptions;
}

/**
 * Checks every option's value on its own, before any data or model is loaded: positive counts
 * and lengths, a known loss and a loss configuration the margin loss accepts, finite
 * non-negative rates. Throws `RangeError` naming the option. {@link planTraining} runs it too,
 * then checks the options against the data.
 *
 * @example
 * ```ts
 * checkTrainOptions({ outDir: "runs/x", queryLength: 0 }); // RangeError: queryLength ...
 * ```
 */
export function checkTrainOptions(options: TrainOptions): ResolvedTrainOptions {
  const opts = withTrainDefaults(options);
  for (
    const name of [
      "batchSize",
      "queryLength",
      "docLength",
      "maxSteps",
      "epochs",
      "evalEvery",
      "patience",
      "stopAfter",
    ] as const
  ) checkPositiveInt(name, opts[name]);
  if (!(Number.isInteger(opts.chunkSize) && opts.chunkSize >= 0)) {
    throw new RangeError(`chunkSize must be a non-negative integer (0: none): ${opts.chunkSize}`);
  }
  if (!(Number.isInteger(opts.warmup) && opts.warmup >= 0)) {
    throw new RangeError(`warmup must be a non-negative integer: ${opts.warmup}`);
  }
  if (!(Number.isFinite(opts.lr) && opts.lr >= 0)) {
    throw new RangeError(`learning rate must be finite and >= 0: ${opts.lr}`);
  }
  if (!(Number.isFinite(opts.weightDecay) && opts.weightDecay >= 0)) {
    throw new RangeError(`weightDecay must be finite and >= 0: ${opts.weightDecay}`);
  }
  if (!(opts.gamma > 0 && opts.gamma <= 1)) {
    throw new RangeError(`gamma must be in (0, 1]: ${opts.gamma}`);
  }
  if (!(opts.maxGradNorm > 0)) {
    throw new RangeError(
      `maxGradNorm must be positive (Infinity: no clipping): ${opts.maxGradNorm}`,
    );
  }
  if (!LOSS_KINDS.includes(opts.loss)) {
    throw new RangeError(`unknown loss ${opts.loss} (${LOSS_KINDS.join(", ")})`);
  }
  if (opts.loss === "infonce" && !(Number.isFinite(opts.infonceScale) && opts.infonceScale > 0)) {
    throw new RangeError(`infonceScale must be a positive number: ${opts.infonceScale}`);
  }
  if (opts.loss === "margin") {
    resolveMarginOptions({
      target: opts.target,
      inBatch: opts.inBatch,
      error: opts.error,
      detachTarget: opts.detachTarget,
      inBatchIndexing: opts.inBatchIndexing,
    });
  }
  return opts;
}

/** What a run does with its options on its data: see {@link planTraining}. */
export interface TrainPlan {
  /** The options, defaults filled in. */
  opts: ResolvedTrainOptions;
  /** Steps in all: `maxSteps`, or `epochs` (default 1 without `maxSteps`) full batches' worth. */
  totalSteps: number;
  /** The learning rate of each step. */
  schedule: Schedule;
  /**
   * The options that define the trajectory, resolved (`trainer.json` keeps them; a resume
   * must match them).
   */
  trajectory: Record<string, unknown>;
}

/**
 * Checks the options against the data (positive counts, a known loss, teacher scores for
 * Margin-MSE, two triples a batch for InfoNCE, enough triples for one batch) and resolves them
 * into a {@link TrainPlan}. Throws `RangeError` (or `Error`, for missing teacher scores)
 * naming the option.
 *
 * @example
 * ```ts
 * const { totalSteps } = planTraining({ outDir: "runs/x", batchSize: 4, epochs: 2 }, {
 *   triples: 10,
 *   teacher: false,
 * }); // 4 (two epochs of two full batches)
 * ```
 */
export function planTraining(
  options: TrainOptions,
  data: { triples: number; teacher: boolean },
): TrainPlan {
  const opts = checkTrainOptions(options);
  const B = opts.batchSize;
  const loss = opts.loss;
  if (loss === "margin-mse" && !data.teacher) throw new Error("Margin-MSE needs teacher scores");
  if (B < 2 && loss === "infonce") throw new RangeError("InfoNCE needs at least 2 triples a batch");
  const n = data.triples;
  const perEpoch = Math.floor(n / B);
  if (perEpoch < 1) throw new RangeError(`${n} triples do not fill one batch of ${B}`);
  const totalSteps = Math.min(
    opts.maxSteps ?? Infinity,
    opts.epochs !== undefined || opts.maxSteps === undefined
      ? (opts.epochs ?? 1) * perEpoch
      : Infinity,
  );
  const trajectory = trajectoryOptions(opts, totalSteps);
  const schedule = makeSchedule(
    opts.lr,
    {
      kind: opts.schedule,
      warmupSteps: opts.warmup,
      totalSteps,
      gamma: opts.gamma,
    } as ScheduleSpec,
  );
  return { opts, totalSteps, schedule, trajectory };
}

/** Options that define the trajectory, resolved; a resume must match them. */
function trajectoryOptions(o: ResolvedTrainOptions, totalSteps: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    loss: o.loss,
    batchSize: o.batchSize,
    queryLength: o.queryLength,
    docLength: o.docLength,
    lr: o.lr,
    weightDecay: o.weightDecay,
    schedule: o.schedule,
    warmup: o.warmup,
    gamma: o.gamma,
    totalSteps,
    evalEvery: o.evalEvery,
    patience: o.patience,
    maxGradNorm: String(o.maxGradNorm),
    seed: o.seed,
  };
  if (o.loss === "margin") {
    const m = resolveMarginOptions({
      target: o.target,
      inBatch: o.inBatch,
      error: o.error,
      detachTarget: o.detachTarget,
      inBatchIndexing: o.inBatchIndexing,
    });
    Object.assign(out, {
      target: m.target,
      inBatch: m.inBatch,
      error: m.error,
      detachTarget: m.detachTarget,
      inBatchIndexing: m.inBatchIndexing,
    });
  }
  if (o.loss === "infonce") out.infonceScale = o.infonceScale;
  return out;
}

function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
    throw new RangeError(`${name} must be a positive integer: ${v}`);
  }
}

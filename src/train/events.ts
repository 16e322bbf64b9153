/**
 * The events a training run reports, in order: `start`; then `step` after every optimizer
 * step, `validation` after every validation, `checkpoint` after every checkpoint written; and
 * `stop` last, once, however the run ends (also when it throws, with the error). Library code
 * reports through them and draws nothing: the run's `log.jsonl` (`src/train/run_log.ts`) and
 * the CLI's progress bar (`src/cli/train_progress.ts`) are two consumers of the same stream.
 *
 * @example
 * ```ts
 * await train(gpu, model, data, {
 *   outDir: "runs/x",
 *   onEvent: (e) => {
 *     if (e.type === "validation") console.log(`step ${e.step}: nDCG@10 ${e.ndcg10}`);
 *   },
 * });
 * ```
 *
 * @module
 */

/** The run is accepted and about to take its first step (or to stop: it has already ended). */
export interface StartEvent {
  /** Discriminator. */
  type: "start";
  /** Steps already taken (0 for a fresh run, the checkpoint's step for a resume). */
  step: number;
  /** Steps of the run's plan in all. */
  totalSteps: number;
  /** Whether the run continues a checkpoint. */
  resumed: boolean;
  /** The output directory. */
  outDir: string;
}

/** One optimizer step was taken. */
export interface StepEvent {
  /** Discriminator. */
  type: "step";
  /** Steps taken so far (1-based number of this step). */
  step: number;
  /** The epoch after this step (0-based; it advances once an epoch's batches are used). */
  epoch: number;
  /** The loss of the batch before the update. */
  loss: number;
  /** The global gradient norm before clipping. */
  gradNorm: number;
  /** The learning rate of the update. */
  lr: number;
  /** Triples of the batch per second of the step's wall time. */
  triplesPerSecond: number;
  /** Wall time of the step, in seconds. */
  seconds: number;
  /** Steps taken by this invocation (resumed runs count from 1 again). */
  stepsRun: number;
  /** Steps of the run's plan in all. */
  totalSteps: number;
}

/** A validation was measured. */
export interface ValidationEvent {
  /** Discriminator. */
  type: "validation";
  /** Steps taken when it was measured. */
  step: number;
  /** Validation nDCG@10. */
  ndcg10: number;
  /** The best validation nDCG@10 so far (this one included). */
  best: number;
  /** The step of the best validation. */
  bestStep: number;
  /** Whether this validation is a new best (its model is then saved as `best/`). */
  improved: boolean;
  /** Validations since the last improvement (early stopping counts them). */
  badValidations: number;
  /** Wall time of the validation, in seconds. */
  seconds: number;
}

/** A checkpoint was written (atomically) to `dir`. */
export interface CheckpointEvent {
  /** Discriminator. */
  type: "checkpoint";
  /** The step it holds. */
  step: number;
  /** `last` (with the optimizer state, for resuming) or `best` (the best validation's model). */
  kind: "last" | "best";
  /** The checkpoint directory. */
  dir: string;
  /** Wall time of the write, in seconds. */
  seconds: number;
}

/**
 * Why a run stopped: its planned steps are done (`max-steps`, whether `maxSteps` or `epochs`
 * set the plan), validation stopped improving (`early-stopping`), this invocation's `stopAfter`
 * steps are done (`stop-after`: `last/` is saved and the run can be resumed), or it failed
 * (`error`).
 */
export type StopReason = "max-steps" | "early-stopping" | "stop-after" | "error";

/** The run stopped; the last event of every run that started. */
export interface StopEvent {
  /** Discriminator. */
  type: "stop";
  /** Why. */
  reason: StopReason;
  /** Steps taken in all. */
  step: number;
  /** Steps taken by this invocation. */
  stepsRun: number;
  /** With `reason: "error"`: what was thrown (`train` rethrows it after this event). */
  error?: Error;
}

/** Everything a training run reports. */
export type TrainEvent = StartEvent | StepEvent | ValidationEvent | CheckpointEvent | StopEvent;

/**
 * Receives a run's events, in order; the run waits for a returned promise. A listener that
 * throws fails the run (except on the `stop` event of a failing run: the run's error wins).
 */
export type TrainEventListener = (event: TrainEvent) => void | Promise<void>;

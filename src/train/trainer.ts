/**
 * The training loop ({@link train}): bi-encoder fine-tuning on the GPU with the margin family
 * (self-distillation with static, adaptive or distributed targets), Margin-MSE or in-batch
 * InfoNCE; AdamW with a learning-rate schedule; validation nDCG@10 by re-ranking BM25
 * candidates; early stopping; atomic best and last checkpoints with optimizer and trainer
 * state, so `resume` continues a stopped run and reaches the same parameters, bit for bit, as an
 * uninterrupted run. The loop reports through events (`onEvent`, see `events.ts`): the run's
 * `log.jsonl` and a CLI's progress bar are written from them.
 *
 * The loop's parts live beside it, one job each:
 * - `options.ts`: {@link TrainOptions}, their defaults ({@link DEFAULT_TRAIN_OPTIONS}) and the
 *   plan they resolve to;
 * - `step.ts`: one optimizer step ({@link trainStep}) and the loss of a batch ({@link batchLoss});
 * - `validate.ts`: validation nDCG@10 ({@link validateNdcg10}), through the re-ranker of
 *   `src/eval/dense.ts`;
 * - `checkpoint.ts`: the output directory (its guard {@link checkOutDir}, its lock, recovery)
 *   and the checkpoints;
 * - `run_log.ts`: `log.jsonl`;
 * - `events.ts`: the events.
 *
 * This module re-exports their public names, so `src/train/trainer.ts` stays the one import of
 * a training script.
 *
 * @module
 */
import type { Gpu } from "../gpu/device.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import type { InBatchIndexing, MarginError, MarginTarget } from "../losses/margin.ts";
import { deriveSeed, Rng } from "../util/rng.ts";
import { type Triple, tripleFingerprint, type ValidationData } from "./data.ts";
import { AdamW } from "./optimizer.ts";
import { planTraining, type TrainOptions } from "./options.ts";
import type { StopReason, TrainEvent } from "./events.ts";
import { NonFiniteTrainingError, type StepContext, trainStep } from "./step.ts";
import { validateNdcg10 } from "./validate.ts";
import {
  openOutDir,
  restoreCheckpoint,
  type TrainerState,
  writeArgs,
  writeCheckpoint,
} from "./checkpoint.ts";
import { createRunLog, RunLog, truncateLog } from "./run_log.ts";

export {
  checkTrainOptions,
  DEFAULT_TRAIN_OPTIONS,
  LOSS_KINDS,
  planTraining,
  withTrainDefaults,
} from "./options.ts";
export type {
  LossKind,
  ResolvedTrainOptions,
  ScheduleKind,
  TrainDefaults,
  TrainOptions,
  TrainPlan,
} from "./options.ts";
export { batchLoss, NonFiniteTrainingError, trainStep } from "./step.ts";
export type { StepContext, StepResult, StepTimings } from "./step.ts";
export { validateNdcg10 } from "./validate.ts";
export type { ValidationRecord } from "./validate.ts";
export {
  checkOutDir,
  CheckpointError,
  openOutDir,
  readCheckpoint,
  readOptimizerState,
  restoreCheckpoint,
  RunExistsError,
  writeCheckpoint,
  writeOptimizerState,
} from "./checkpoint.ts";
export type { Checkpoint, OpenOutDirOptions, RestoreTarget, TrainerState } from "./checkpoint.ts";
export { logLine, RunLog, truncateLog } from "./run_log.ts";
export type {
  CheckpointEvent,
  StartEvent,
  StepEvent,
  StopEvent,
  StopReason,
  TrainEvent,
  TrainEventListener,
  ValidationEvent,
} from "./events.ts";

/** What {@link train} trains on. */
export interface TrainData {
  /** The triples, in canonical order (the seeded shuffle is applied per epoch). */
  triples: Triple[];
  /** Teacher scores per triple (Margin-MSE). */
  teacher?: { pos: ArrayLike<number>; neg: ArrayLike<number> };
  /** Validation queries with their BM25 candidates. */
  validation?: ValidationData;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** The final state. */
  state: TrainerState;
  /** Steps run by this invocation. */
  stepsRun: number;
  /** Total steps of the run's plan. */
  totalSteps: number;
  /** The output directory. */
  outDir: string;
}

/** The {@link StopReason} of a `trainer.json` stop reason (null: `stopAfter` ended the call). */
function stopReason(reason: string | null): StopReason {
  return reason === "early stopping"
    ? "early-stopping"
    : reason === "max steps"
    ? "max-steps"
    : "stop-after";
}

/**
 * Trains `model` in place on `data`; writes checkpoints and the log into `opts.outDir`.
 * With `resume`, continues from `outDir/last` (its options and data must match). Reports its
 * progress as events to `opts.onEvent` (see `events.ts`): `start`, then `step`, `validation`
 * and `checkpoint` as they happen, and `stop` last (also when it throws).
 *
 * Holds `outDir`'s lock ({@link openOutDir}) from before it writes anything until it returns or
 * throws (a second run on the directory gets a `LockError` naming the holder's pid; SIGINT and
 * SIGTERM release it). A fresh run into a directory that holds a run throws
 * {@link RunExistsError}; see {@link checkOutDir}. Refused runs write nothing and report no
 * event.
 *
 * @example
 * ```ts
 * const model = await loadEncoder(gpu, "use-lite");
 * await train(gpu, model, { triples, validation }, {
 *   batchSize: 32, queryLength: 20, docLength: 128, lr: 1e-5, seed: 1, outDir: "runs/x",
 *   onEvent: (e) => { if (e.type === "step") console.log(e.step, e.loss); },
 * });
 * ```
 */
export async function train(
  gpu: Gpu,
  model: LoadedEncoder,
  data: TrainData,
  options: TrainOptions,
): Promise<TrainResult> {
  const plan = planTraining(options, {
    triples: data.triples.length,
    teacher: data.teacher !== undefined,
  });
  const { opts, totalSteps, schedule, trajectory } = plan;
  const say = opts.log ?? (() => {});
  const B = opts.batchSize, n = data.triples.length;
  const fingerprint = tripleFingerprint(data.triples);
  const out = opts.outDir;
  const lastDir = `${out}/last`, bestDir = `${out}/best`, logPath = `${out}/log.jsonl`;
  await using _lock = await openOutDir(out, {
    resume: opts.resume,
    lock: opts.lock,
    breakLock: opts.breakLock,
    log: say,
  });

  const optimizer = new AdamW(model.named, { lr: opts.lr, weightDecay: opts.weightDecay });
  try {
    const ctx: StepContext = {
      gpu,
      model,
      optimizer,
      loss: opts.loss,
      margin: opts.loss === "margin"
        ? {
          target: trajectory.target as MarginTarget,
          inBatch: trajectory.inBatch as boolean,
          error: trajectory.error as MarginError,
          detachTarget: trajectory.detachTarget as boolean,
          inBatchIndexing: trajectory.inBatchIndexing as InBatchIndexing,
        }
        : undefined,
      infonceScale: trajectory.infonceScale as number | undefined,
      queryLength: opts.queryLength,
      docLength: opts.docLength,
      maxGradNorm: opts.maxGradNorm,
      chunkSize: opts.chunkSize,
    };

    const rng = new Rng(deriveSeed(opts.seed, "order"));
    let state: TrainerState = {
      version: 1,
      step: 0,
      epoch: 0,
      cursor: 0,
      epochRngState: rng.state,
      rngState: rng.state,
      seed: opts.seed,
      bestMetric: null,
      bestStep: null,
      badValidations: 0,
      history: [],
      stopReason: null,
      options: trajectory,
      data: fingerprint,
    };
    let order: number[] | null = null;
    if (opts.resume) {
      state = await restoreCheckpoint(lastDir, { trajectory, fingerprint, model, optimizer });
      if (state.cursor > 0) {
        rng.state = state.epochRngState;
        order = rng.shuffle([...Array(n).keys()]);
      }
      rng.state = state.rngState;
      const dropped = await truncateLog(logPath, state.step);
      if (dropped) {
        say(`dropped ${dropped} line(s) of ${logPath} written after the checkpoint's step`);
      }
      say(`resuming at step ${state.step} of ${totalSteps} from ${lastDir}`);
    } else {
      // The run is accepted: its files are created, never overwritten.
      await createRunLog(logPath);
      if (opts.args !== undefined) await writeArgs(out, opts.args);
    }

    await opts.onEvent?.({
      type: "start",
      step: state.step,
      totalSteps,
      resumed: opts.resume,
      outDir: out,
    });
    if (state.stopReason) {
      say(`the run in ${out} has already ended (${state.stopReason})`);
      const reason = stopReason(state.stopReason);
      await opts.onEvent?.({ type: "stop", reason, step: state.step, stepsRun: 0 });
      return { state, stepsRun: 0, totalSteps, outDir: out };
    }

    // The log is written from the events, as a listener's progress bar is drawn from them.
    using runLog = await RunLog.open(logPath);
    const emit = async (event: TrainEvent) => {
      runLog.record(event);
      await opts.onEvent?.(event);
    };

    const checkpoint = async (kind: "last" | "best") => {
      const t0 = performance.now();
      const dir = kind === "last" ? lastDir : bestDir;
      await writeCheckpoint(model, kind === "last" ? optimizer : null, state, dir, opts.card);
      const seconds = (performance.now() - t0) / 1000;
      await emit({ type: "checkpoint", step: state.step, kind, dir, seconds });
    };
    const validate = async () => {
      const t0 = performance.now();
      const ndcg10 = await validateNdcg10(gpu, model, data.validation!, opts);
      state.history.push({ step: state.step, ndcg10 });
      const improved = state.bestMetric === null || ndcg10 > state.bestMetric;
      if (improved) {
        state.bestMetric = ndcg10;
        state.bestStep = state.step;
        state.badValidations = 0;
      } else state.badValidations++;
      await emit({
        type: "validation",
        step: state.step,
        ndcg10,
        best: state.bestMetric!,
        bestStep: state.bestStep!,
        improved,
        badValidations: state.badValidations,
        seconds: (performance.now() - t0) / 1000,
      });
      if (improved) await checkpoint("best");
      if (state.badValidations >= opts.patience) state.stopReason = "early stopping";
    };
    let savedAt = -1;
    const save = async () => {
      if (savedAt === state.step) return;
      savedAt = state.step;
      state.rngState = rng.state;
      await checkpoint("last");
    };

    let stepsRun = 0;
    try {
      if (state.step === 0 && data.validation && state.history.length === 0) await validate();
      while (state.step < totalSteps && !state.stopReason) {
        if (opts.stopAfter !== undefined && stepsRun >= opts.stopAfter) break;
        if (state.cursor === 0 || order === null) {
          state.epochRngState = rng.state;
          order = rng.shuffle([...Array(n).keys()]);
        }
        const idx = order.slice(state.cursor, state.cursor + B);
        const batch = idx.map((i) => data.triples[i]);
        const teacher = data.teacher
          ? { pos: idx.map((i) => data.teacher!.pos[i]), neg: idx.map((i) => data.teacher!.neg[i]) }
          : undefined;
        const lr = schedule(state.step);
        const t0 = performance.now();
        const r = await trainStep(ctx, batch, teacher, lr, { step: state.step + 1 });
        const seconds = (performance.now() - t0) / 1000;
        state.step++;
        stepsRun++;
        state.cursor += B;
        if (state.cursor + B > n) {
          state.epoch++;
          state.cursor = 0;
        }
        await emit({
          type: "step",
          step: state.step,
          epoch: state.epoch,
          loss: r.loss,
          gradNorm: r.gradNorm,
          lr,
          triplesPerSecond: B / seconds,
          seconds,
          stepsRun,
          totalSteps,
        });
        if (state.step % opts.evalEvery === 0) {
          if (data.validation) await validate();
          if (state.step >= totalSteps && !state.stopReason) state.stopReason = "max steps";
          await save();
        }
      }
      if (state.step >= totalSteps && !state.stopReason) {
        state.stopReason = "max steps";
        if (data.validation && state.history.at(-1)?.step !== state.step) await validate();
      }
      if (state.stopReason || stepsRun > 0) await save();
    } catch (e) {
      const error = e as Error;
      const stop: TrainEvent = { type: "stop", reason: "error", step: state.step, stepsRun, error };
      runLog.record(stop); // the NaN line carries the error as the step raised it
      if (e instanceof NonFiniteTrainingError) {
        const kept = (await Deno.stat(lastDir).then(() => true, () => false))
          ? `${lastDir} is kept`
          : "no checkpoint was written";
        e.message += ` (no update applied; the last good checkpoint, ${kept})`;
      }
      try {
        await opts.onEvent?.(stop);
      } catch {
        // The run's own error is the one to report.
      }
      throw e;
    }
    await emit({ type: "stop", reason: stopReason(state.stopReason), step: state.step, stepsRun });
    if (state.stopReason) say(`stopped: ${state.stopReason} at step ${state.step}`);
    return { state, stepsRun, totalSteps, outDir: out };
  } finally {
    optimizer.destroy();
  }
}

/**
 * The training loop: bi-encoder fine-tuning on the GPU with the margin family (self-distillation
 * with static, adaptive or distributed targets), Margin-MSE or in-batch InfoNCE; AdamW with a
 * learning-rate schedule; validation nDCG@10 by re-ranking BM25 candidates; early stopping;
 * atomic best and last checkpoints with optimizer and trainer state, so `resume` continues a
 * stopped run and reaches the same parameters, bit for bit, as an uninterrupted run.
 *
 * One step ({@link trainStep}): tokenize the batch's queries (query length) and documents
 * (document length); the encoder forward for Q, P and N recorded on one tape that watches every
 * parameter; the loss; backward; the global gradient norm (clipped when asked; NaN or Inf stops
 * training with the names of the offending tensors); the optimizer update with the schedule's
 * learning rate. Everything runs inside one tensor arena, so the step's activations and
 * gradients are freed when it ends.
 *
 * Output directory: `last/` and `best/` (model directories that `loadEncoder` loads, plus
 * `trainer.json`, and in `last/` the optimizer's `optimizer.safetensors`), `log.jsonl` (one line
 * per step and per validation), `args.json` (what the caller passed as `args`), and `.lock`
 * while a run holds it. Nothing there is ever lost or silently replaced:
 *
 * - the run takes the directory's lock ({@link lockDir}) before it touches anything, so two runs
 *   never write one directory; a stale lock is reported (`breakLock` takes it over);
 * - a fresh run refuses a directory that holds any trace of a run (`last/`, `best/`,
 *   `log.jsonl`, `args.json`, `last.old/`, `best.old/`): see {@link RunExistsError};
 * - checkpoints are swapped in atomically ({@link replaceDir}); a resume first recovers a
 *   checkpoint left as `last.old/` (or `best.old/`) by a save interrupted mid-swap, then removes
 *   the unfinished copies (`*.staging*`, `*.tmp-*`) an interrupted save leaves;
 * - `log.jsonl` is created by a fresh run and only appended to; a resume drops (atomically, and
 *   says how many) the lines written after its checkpoint's step by the interrupted run.
 *
 * @module
 */
import { atomicFile, recoverDir, replaceDir } from "../util/fs.ts";
import { type DirLock, lockDir } from "../util/lock.ts";
import { Tape } from "../autodiff/tape.ts";
import { ProgressBar } from "../cli/progress.ts";
import type { Qrels, Run } from "../data/types.ts";
import { evaluate } from "../eval/metrics.ts";
import type { Gpu } from "../gpu/device.ts";
import { synchronize } from "../gpu/kernels.ts";
import { type Tensor, withArena } from "../gpu/tensor.ts";
import { infoNceLossTensor } from "../losses/infonce.ts";
import {
  type InBatchIndexing,
  type MarginError,
  marginLossTensor,
  type MarginTarget,
  resolveMarginOptions,
} from "../losses/margin.ts";
import { marginMseLossTensor } from "../losses/margin_mse.ts";
import { encodeTexts, padBatch, tokenizeAll } from "../models/encode.ts";
import { encoderForward } from "../models/encoder.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import { saveEncoder } from "../models/load.ts";
import { type NamedTensor, parseSafetensors, writeSafetensors } from "../models/safetensors.ts";
import { type Triple, tripleFingerprint, type ValidationData } from "./data.ts";
import { AdamW, clipGradNorm, type OptimizerState } from "./optimizer.ts";
import { deriveSeed, Rng } from "../util/rng.ts";
import { makeSchedule, type Schedule } from "./schedule.ts";
import { readTextFileStrict } from "../data/lines.ts";

/** The training objectives. */
export type LossKind = "margin" | "margin-mse" | "infonce";

/** Options of {@link train}. Defaults follow the reference setup where it has one. */
export interface TrainOptions {
  /** The objective. Default "margin". */
  loss?: LossKind;
  /** Margin target: "adaptive", "distributed" or a number. Default "adaptive". */
  target?: MarginTarget;
  /** Margin loss over every negative of the batch. Default false. */
  inBatch?: boolean;
  /** Margin error function. Default "l2". */
  error?: MarginError;
  /** Detach the margin target from the graph. Default false. */
  detachTarget?: boolean;
  /** In-batch indexing of the margin loss. Default "reference". */
  inBatchIndexing?: InBatchIndexing;
  /** InfoNCE logit scale. Default 20. */
  infonceScale?: number;
  /** Triples per step. */
  batchSize: number;
  /** Query length in tokens (clamped to the model's). */
  queryLength: number;
  /** Document length in tokens (clamped to the model's). */
  docLength: number;
  /** Peak learning rate. */
  lr: number;
  /** AdamW's decoupled weight decay (0: Adam, as the reference). Default 0. */
  weightDecay?: number;
  /** Schedule. Default "constant". */
  schedule?: "constant" | "linear" | "exponential";
  /** Warm-up steps. Default 0. */
  warmup?: number;
  /** Per-step decay of the exponential schedule. Default 0.99999. */
  gamma?: number;
  /** Stop after this many steps in all (with `epochs`, whichever comes first). */
  maxSteps?: number;
  /** Passes over the triples (default 1 when `maxSteps` is absent). */
  epochs?: number;
  /** Validate (and save `last/`) every this many steps. Default 500. */
  evalEvery?: number;
  /** Stop after this many validations without improvement. Default 16. */
  patience?: number;
  /** Clip the global gradient norm to this (Infinity: measure only). Default Infinity. */
  maxGradNorm?: number;
  /** Seed of the data order. */
  seed: number;
  /** Output directory. */
  outDir: string;
  /** Continue the run in `outDir` from its `last/` checkpoint. */
  resume?: boolean;
  /**
   * Take over a stale lock of `outDir` (left by a run that no longer runs on this host).
   * Default false: a stale lock is an error that says so.
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
  /** Draw a progress bar on stderr. Default false. */
  progress?: boolean;
  /** Messages (resume, validation, stop); default none. */
  log?: (message: string) => void;
}

/** What {@link train} trains on. */
export interface TrainData {
  /** The triples, in canonical order (the seeded shuffle is applied per epoch). */
  triples: Triple[];
  /** Teacher scores per triple (Margin-MSE). */
  teacher?: { pos: ArrayLike<number>; neg: ArrayLike<number> };
  /** Validation queries with their BM25 candidates. */
  validation?: ValidationData;
}

/** One validation result. */
export interface ValidationRecord {
  /** Optimizer steps taken when it was measured. */
  step: number;
  /** nDCG@10 (trec_eval `ndcg_cut_10`, averaged over every validation query). */
  ndcg10: number;
}

/** The persistent state of a run, saved as `trainer.json`. */
export interface TrainerState {
  /** Format version. */
  version: 1;
  /** Optimizer steps taken. */
  step: number;
  /** The current epoch (0-based). */
  epoch: number;
  /** Triples of the current epoch's order consumed. */
  cursor: number;
  /** RNG state before the current epoch's shuffle. */
  epochRngState: number;
  /** RNG state now. */
  rngState: number;
  /** The seed the run started from. */
  seed: number;
  /** Best validation nDCG@10 so far (null without validation). */
  bestMetric: number | null;
  /** Step of the best validation. */
  bestStep: number | null;
  /** Validations since the last improvement. */
  badValidations: number;
  /** Every validation so far. */
  history: ValidationRecord[];
  /** Whether the run has ended (and why). */
  stopReason: string | null;
  /** The trajectory-defining options, compared on resume. */
  options: Record<string, unknown>;
  /** {@link tripleFingerprint} of the training triples. */
  data: string;
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

/** Raised when the loss or a gradient is NaN or Inf; `last/` is left as it was. */
export class NonFiniteTrainingError extends Error {
  /**
   * @param step the step that failed (1-based)
   * @param detail what was not finite
   */
  constructor(readonly step: number, detail: string) {
    super(`training stopped at step ${step}: ${detail}`);
    this.name = "NonFiniteTrainingError";
  }
}

/**
 * Raised when a fresh run (no `resume`) is pointed at a directory that holds a run; the message
 * lists what was found and what to do (resume it, train from its `best/`, or pick another
 * directory).
 */
export class RunExistsError extends Error {
  /**
   * The refusal, with what was found and what to do.
   *
   * @param dir the output directory
   * @param found the traces of a run found there (`last`, `best`, `log.jsonl`, ...)
   */
  constructor(readonly dir: string, readonly found: string[]) {
    const resumable = found.includes("last") || found.includes("last.old");
    const hint = resumable
      ? "pass --resume (resume: true) to continue it, or choose another output directory"
      : found.includes("best")
      ? `its resumable checkpoint ${dir}/last (with the optimizer state) is gone, so it cannot ` +
        `be continued; to train its best model further, start a new run from it (--model ` +
        `${dir}/best) in another output directory`
      : `it saved no checkpoint to continue from; choose another output directory (or delete ` +
        `${dir} if that run is of no use)`;
    super(`${dir} already holds a run (${found.join(", ")}): ${hint}`);
    this.name = "RunExistsError";
  }
}

/** Raised for a checkpoint that cannot be resumed from; names the directory and the problem. */
export class CheckpointError extends Error {
  /**
   * @param dir the checkpoint directory
   * @param detail what is wrong
   */
  constructor(readonly dir: string, detail: string) {
    super(`cannot resume from ${dir}: ${detail}`);
    this.name = "CheckpointError";
  }
}

/** Per-phase wall times of one step, in milliseconds (with `time`, phases are synchronized). */
export interface StepTimings {
  /** Tokenization and the three encoder forwards and the loss. */
  forward: number;
  /** Backward along the tape and the gradient norm. */
  backward: number;
  /** The optimizer update. */
  optimizer: number;
}

/** The result of one {@link trainStep}. */
export interface StepResult {
  /** The loss of the batch before the update. */
  loss: number;
  /** The global gradient norm before clipping. */
  gradNorm: number;
  /** Phase timings, when asked for. */
  timings?: StepTimings;
}

/** What {@link trainStep} needs besides the batch. */
export interface StepContext {
  /** The GPU. */
  gpu: Gpu;
  /** The model being trained (its parameters are updated in place). */
  model: LoadedEncoder;
  /** The optimizer over `model.named`. */
  optimizer: AdamW;
  /** The loss, with its options. */
  loss: LossKind;
  /** Margin options (for `loss: "margin"`). */
  margin?: {
    target: MarginTarget;
    inBatch: boolean;
    error: MarginError;
    detachTarget: boolean;
    inBatchIndexing: InBatchIndexing;
  };
  /** InfoNCE scale. */
  infonceScale?: number;
  /** Query length in tokens. */
  queryLength: number;
  /** Document length in tokens. */
  docLength: number;
  /** Gradient clipping norm (Infinity: none). */
  maxGradNorm: number;
}

function tokens(model: LoadedEncoder, texts: string[], length: number) {
  const { ids } = tokenizeAll(
    model.tokenizer,
    texts,
    Math.min(length, model.maxLength),
    model.params.wordEmbeddings.shape[0],
  );
  return padBatch(ids, model.config.padId);
}

/**
 * One optimizer step on a batch of triples: forward (Q, P, N on one tape), loss, backward,
 * gradient norm (and clipping), update with learning rate `lr`. Throws
 * {@link NonFiniteTrainingError} (without updating) when the loss or a gradient is not finite.
 * With `time`, the GPU is synchronized after each phase and the phases' wall times returned.
 *
 * @example
 * ```ts
 * const { loss, gradNorm } = await trainStep(ctx, batch, undefined, 1e-5);
 * ```
 */
export async function trainStep(
  ctx: StepContext,
  batch: readonly Triple[],
  teacher: { pos: number[]; neg: number[] } | undefined,
  lr: number,
  opts: { time?: boolean; step?: number } = {},
): Promise<StepResult> {
  const { gpu, model } = ctx;
  const tape = new Tape();
  tape.watch(...model.named.values());
  try {
    return await withArena(async () => {
      const t0 = performance.now();
      const forward = async (texts: string[], length: number): Promise<Tensor> =>
        (await encoderForward(gpu, model.config, model.params, tokens(model, texts, length), {
          tape,
        })).pooled;
      const q = await forward(batch.map((t) => t.query), ctx.queryLength);
      const p = await forward(batch.map((t) => t.positive), ctx.docLength);
      const n = await forward(batch.map((t) => t.negative), ctx.docLength);
      let loss: Tensor;
      if (ctx.loss === "margin") {
        loss = await marginLossTensor(q, p, n, { ...ctx.margin!, tape });
      } else if (ctx.loss === "margin-mse") {
        if (!teacher) throw new Error("Margin-MSE needs teacher scores");
        loss = await marginMseLossTensor(q, p, n, teacher, { tape });
      } else {
        loss = await infoNceLossTensor(q, p, n, { scale: ctx.infonceScale, tape });
      }
      if (opts.time) await synchronize(gpu);
      const t1 = performance.now();
      await tape.backward(loss);
      const grads = new Map<string, Tensor>();
      for (const [name, t] of model.named) grads.set(name, tape.grad(t)!);
      const norm = await clipGradNorm(grads, ctx.maxGradNorm);
      const lossValue = (await loss.read())[0];
      const t2 = performance.now();
      if (!Number.isFinite(lossValue) || !norm.finite) {
        const parts = [];
        if (!Number.isFinite(lossValue)) parts.push(`the loss is ${lossValue}`);
        if (!norm.finite) {
          parts.push(
            `the gradient norm is ${norm.norm}, NaN or Inf in the gradients of ${
              norm.nonFinite.length ? norm.nonFinite.join(", ") : "(overflow of the total)"
            }`,
          );
        }
        throw new NonFiniteTrainingError(opts.step ?? 0, parts.join("; "));
      }
      await ctx.optimizer.step(grads, lr);
      if (opts.time) await synchronize(gpu);
      const t3 = performance.now();
      return {
        loss: lossValue,
        gradNorm: norm.norm,
        timings: opts.time
          ? { forward: t1 - t0, backward: t2 - t1, optimizer: t3 - t2 }
          : undefined,
      };
    }, () => []);
  } finally {
    tape.dispose();
  }
}

/**
 * The loss of a batch of triples under the model, without a tape or an update (for monitoring:
 * e.g. the training loss of a fixed probe batch before and after training).
 */
export async function batchLoss(
  ctx: Omit<StepContext, "optimizer" | "maxGradNorm">,
  batch: readonly Triple[],
  teacher?: { pos: number[]; neg: number[] },
): Promise<number> {
  const { gpu, model } = ctx;
  return await withArena(async () => {
    const forward = async (texts: string[], length: number): Promise<Tensor> =>
      (await encoderForward(gpu, model.config, model.params, tokens(model, texts, length)))
        .pooled;
    const q = await forward(batch.map((t) => t.query), ctx.queryLength);
    const p = await forward(batch.map((t) => t.positive), ctx.docLength);
    const n = await forward(batch.map((t) => t.negative), ctx.docLength);
    const loss = ctx.loss === "margin"
      ? await marginLossTensor(q, p, n, ctx.margin!)
      : ctx.loss === "margin-mse"
      ? await marginMseLossTensor(q, p, n, teacher!)
      : await infoNceLossTensor(q, p, n, { scale: ctx.infonceScale });
    return (await loss.read())[0];
  }, () => []);
}

/**
 * Validation nDCG@10: re-ranks each validation query's BM25 candidates by cosine similarity of
 * the model's embeddings. Every candidate document is encoded once per call (embeddings are
 * shared across queries); nDCG@10 is trec_eval's `ndcg_cut_10` averaged over all validation
 * queries (`-c`: a query without candidates counts as 0).
 */
export async function validateNdcg10(
  gpu: Gpu,
  model: LoadedEncoder,
  val: ValidationData,
  lengths: { queryLength: number; docLength: number },
): Promise<number> {
  const qids = [...val.queries.keys()];
  const docIds = [...val.docs.keys()];
  const qe = await encodeTexts(gpu, model, qids.map((q) => val.queries.get(q)!), {
    maxLength: lengths.queryLength,
  });
  const de = await encodeTexts(gpu, model, docIds.map((d) => val.docs.get(d)!), {
    maxLength: lengths.docLength,
  });
  const row = new Map(docIds.map((d, i) => [d, i]));
  const dim = qe.dim;
  const norm = (data: Float32Array, i: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += data[i * dim + k] ** 2;
    return Math.sqrt(s) || 1;
  };
  const run: Run = new Map();
  qids.forEach((qid, qi) => {
    const ids = val.candidates.get(qid) ?? [];
    const qn = norm(qe.data, qi);
    const scores = ids.map((id) => {
      const di = row.get(id)!;
      let s = 0;
      for (let k = 0; k < dim; k++) s += qe.data[qi * dim + k] * de.data[di * dim + k];
      return s / (qn * norm(de.data, di));
    });
    run.set(qid, { docIds: ids, scores });
  });
  const qrels: Qrels = new Map(qids.map((q) => [q, val.qrels.get(q) ?? new Map()]));
  const { all } = evaluate(qrels, run, { averageComplete: true, cutoffs: { ndcg_cut: [10] } });
  return all.ndcg_cut_10;
}

// ---- checkpoints -----------------------------------------------------------------------------

/** Writes an optimizer state as safetensors: `NAME.adam_m`, `NAME.adam_v`, steps in metadata. */
export async function writeOptimizerState(path: string, state: OptimizerState): Promise<void> {
  const tensors = new Map<string, NamedTensor>();
  const steps: Record<string, number> = {};
  for (const [name, s] of Object.entries(state.params)) {
    tensors.set(`${name}.adam_m`, { shape: [s.m.length], data: s.m });
    tensors.set(`${name}.adam_v`, { shape: [s.v.length], data: s.v });
    steps[name] = s.step;
  }
  await writeSafetensors(path, tensors, {
    format: "selfmargin-optimizer",
    step: String(state.step),
    param_steps: JSON.stringify(steps),
  });
}

/** Reads {@link writeOptimizerState}'s file; throws naming the file on any inconsistency. */
export async function readOptimizerState(path: string): Promise<OptimizerState> {
  const { tensors, metadata } = parseSafetensors(await Deno.readFile(path), path);
  if (metadata.format !== "selfmargin-optimizer") {
    throw new Error(`${path}: not an optimizer state (metadata format ${metadata.format})`);
  }
  let steps: Record<string, number>;
  try {
    steps = JSON.parse(metadata.param_steps ?? "");
  } catch {
    throw new Error(`${path}: metadata param_steps is not JSON`);
  }
  const state: OptimizerState = { step: Number(metadata.step), params: {} };
  for (const [name, step] of Object.entries(steps)) {
    const m = tensors.get(`${name}.adam_m`), v = tensors.get(`${name}.adam_v`);
    if (!m || !v) throw new Error(`${path}: moments of ${name} missing`);
    state.params[name] = { step, m: m.data as Float32Array, v: v.data as Float32Array };
  }
  return state;
}

/**
 * Writes `dir` atomically: the model (saveEncoder), the optimizer state and `trainer.json` go
 * to a staging directory that then replaces `dir` (the previous one is kept as `dir.old` until
 * the new one is in place).
 */
async function writeCheckpoint(
  model: LoadedEncoder,
  optimizer: AdamW | null,
  state: TrainerState,
  dir: string,
): Promise<void> {
  const staging = `${dir}.staging`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await saveEncoder(model, staging, { step: String(state.step) });
  if (optimizer) {
    await writeOptimizerState(`${staging}/optimizer.safetensors`, await optimizer.state());
  }
  await Deno.writeTextFile(`${staging}/trainer.json`, JSON.stringify(state, null, 2) + "\n");
  await replaceDir(staging, dir);
}

/** A checkpoint read back for resuming. */
export interface Checkpoint {
  /** The model's tensors by name. */
  weights: Map<string, NamedTensor>;
  /** The optimizer state. */
  optimizer: OptimizerState;
  /** The trainer state. */
  state: TrainerState;
}

/**
 * Reads and checks a `last/` checkpoint: every file present and well-formed (config.json,
 * model.safetensors, optimizer.safetensors, trainer.json); throws {@link CheckpointError}
 * naming the directory and the problem otherwise.
 */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw new CheckpointError(dir, "not a directory");
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(dir, "no checkpoint there");
  }
  const files = ["config.json", "model.safetensors", "optimizer.safetensors", "trainer.json"];
  for (const f of files) {
    try {
      await Deno.stat(`${dir}/${f}`);
    } catch {
      throw new CheckpointError(dir, `${f} is missing`);
    }
  }
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new CheckpointError(dir, (e as Error).message);
    }
  };
  await wrap(async () => {
    try {
      JSON.parse(await readTextFileStrict(`${dir}/config.json`));
    } catch (e) {
      throw new Error(`config.json is not valid JSON (${(e as Error).message})`);
    }
  });
  const weights = await wrap(async () =>
    parseSafetensors(await Deno.readFile(`${dir}/model.safetensors`), `${dir}/model.safetensors`)
      .tensors
  );
  const optimizer = await wrap(() => readOptimizerState(`${dir}/optimizer.safetensors`));
  const state = await wrap(async () => {
    let s: TrainerState;
    try {
      s = JSON.parse(await readTextFileStrict(`${dir}/trainer.json`));
    } catch (e) {
      throw new Error(`trainer.json is not valid JSON (${(e as Error).message})`);
    }
    for (const key of ["step", "epoch", "cursor", "epochRngState", "rngState"] as const) {
      if (!Number.isInteger(s?.[key]) || s[key] < 0) {
        throw new Error(`trainer.json: ${key} is missing or not a non-negative integer`);
      }
    }
    if (s.version !== 1) throw new Error(`trainer.json: unknown version ${s.version}`);
    return s;
  });
  return { weights, optimizer, state };
}

// ---- the loop --------------------------------------------------------------------------------

/** Options that define the trajectory, resolved; a resume must match them. */
function trajectoryOptions(o: TrainOptions, totalSteps: number): Record<string, unknown> {
  const loss = o.loss ?? "margin";
  const out: Record<string, unknown> = {
    loss,
    batchSize: o.batchSize,
    queryLength: o.queryLength,
    docLength: o.docLength,
    lr: o.lr,
    weightDecay: o.weightDecay ?? 0,
    schedule: o.schedule ?? "constant",
    warmup: o.warmup ?? 0,
    gamma: o.gamma ?? 0.99999,
    totalSteps,
    evalEvery: o.evalEvery ?? 500,
    patience: o.patience ?? 16,
    maxGradNorm: String(o.maxGradNorm ?? Infinity),
    seed: o.seed,
  };
  if (loss === "margin") {
    const m = resolveMarginOptions({
      target: o.target ?? "adaptive",
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
  if (loss === "infonce") out.infonceScale = o.infonceScale ?? 20;
  return out;
}

function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
    throw new RangeError(`${name} must be a positive integer: ${v}`);
  }
}

/**
 * Trains `model` in place on `data`; writes checkpoints and the log into `opts.outDir`.
 * With `resume`, continues from `outDir/last` (its options and data must match).
 *
 * Holds `outDir`'s lock ({@link lockDir}) from before it writes anything until it returns or
 * throws (a second run on the directory gets a `LockError` naming the holder's pid; SIGINT and
 * SIGTERM release it). A fresh run into a directory that holds a run throws
 * {@link RunExistsError}; see {@link checkOutDir}. Refused runs write nothing.
 *
 * @example
 * ```ts
 * const model = await loadEncoder(gpu, "use-lite");
 * await train(gpu, model, { triples, validation }, {
 *   batchSize: 32, queryLength: 20, docLength: 128, lr: 1e-5, seed: 1, outDir: "runs/x",
 * });
 * ```
 */
export async function train(
  gpu: Gpu,
  model: LoadedEncoder,
  data: TrainData,
  opts: TrainOptions,
): Promise<TrainResult> {
  const say = opts.log ?? (() => {});
  const B = opts.batchSize;
  checkPositiveInt("batchSize", B);
  checkPositiveInt("maxSteps", opts.maxSteps);
  checkPositiveInt("epochs", opts.epochs);
  checkPositiveInt("evalEvery", opts.evalEvery);
  checkPositiveInt("patience", opts.patience);
  checkPositiveInt("stopAfter", opts.stopAfter);
  const loss = opts.loss ?? "margin";
  if (!["margin", "margin-mse", "infonce"].includes(loss)) {
    throw new RangeError(`unknown loss ${loss} (margin, margin-mse, infonce)`);
  }
  if (loss === "margin-mse" && !data.teacher) throw new Error("Margin-MSE needs teacher scores");
  if (B < 2 && loss === "infonce") throw new RangeError("InfoNCE needs at least 2 triples a batch");
  const n = data.triples.length;
  const perEpoch = Math.floor(n / B);
  if (perEpoch < 1) throw new RangeError(`${n} triples do not fill one batch of ${B}`);
  const totalSteps = Math.min(
    opts.maxSteps ?? Infinity,
    opts.epochs !== undefined || opts.maxSteps === undefined
      ? (opts.epochs ?? 1) * perEpoch
      : Infinity,
  );
  const evalEvery = opts.evalEvery ?? 500;
  const patience = opts.patience ?? 16;
  const options = trajectoryOptions(opts, totalSteps);
  const fingerprint = tripleFingerprint(data.triples);
  const schedule: Schedule = makeSchedule(
    opts.lr,
    {
      kind: opts.schedule ?? "constant",
      warmupSteps: opts.warmup ?? 0,
      totalSteps,
      gamma: opts.gamma,
    } as Parameters<typeof makeSchedule>[1],
  );
  const out = opts.outDir;
  const lastDir = `${out}/last`, bestDir = `${out}/best`, logPath = `${out}/log.jsonl`;
  await checkOutDir(out, opts.resume ?? false);
  // Nothing in `out` is touched before the lock is ours and the run accepted.
  if (opts.lock && opts.lock.dir !== out) {
    throw new RangeError(`the lock given is that of ${opts.lock.dir}, not of ${out}`);
  }
  await using lock = opts.lock ? null : await lockDir(out, {
    breakStale: opts.breakLock,
    breakHint: "pass --break-lock (breakLock: true)",
  });
  if (lock?.broken) {
    say(
      `took over the stale lock of pid ${lock.broken.pid} (since ${lock.broken.started}) in ${out}`,
    );
  }
  await checkOutDir(out, opts.resume ?? false); // again: another run may have started since
  if (opts.resume) {
    for (const dir of [lastDir, bestDir]) {
      if (await recoverDir(dir) === "restored") {
        say(`recovered ${dir} from ${dir}.old, left by a save that was interrupted`);
      }
    }
  }
  await removeUnfinished(out, say);

  const optimizer = new AdamW(model.named, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
  const ctx: StepContext = {
    gpu,
    model,
    optimizer,
    loss,
    margin: loss === "margin"
      ? {
        target: options.target as MarginTarget,
        inBatch: options.inBatch as boolean,
        error: options.error as MarginError,
        detachTarget: options.detachTarget as boolean,
        inBatchIndexing: options.inBatchIndexing as InBatchIndexing,
      }
      : undefined,
    infonceScale: options.infonceScale as number | undefined,
    queryLength: opts.queryLength,
    docLength: opts.docLength,
    maxGradNorm: opts.maxGradNorm ?? Infinity,
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
    options,
    data: fingerprint,
  };
  let order: number[] | null = null;

  try {
    try {
      if (opts.resume) {
        const ck = await readCheckpoint(lastDir);
        const diffs = Object.keys({ ...options, ...ck.state.options }).filter((k) =>
          JSON.stringify(options[k]) !== JSON.stringify(ck.state.options?.[k])
        );
        if (diffs.length) {
          throw new CheckpointError(
            lastDir,
            `the run was started with other options: ${
              diffs.map((k) =>
                `${k} ${JSON.stringify(ck.state.options?.[k])} (now ${JSON.stringify(options[k])})`
              ).join(", ")
            }`,
          );
        }
        if (ck.state.data !== fingerprint) {
          throw new CheckpointError(
            lastDir,
            `the training triples differ (checkpoint ${ck.state.data}, now ${fingerprint})`,
          );
        }
        for (const [name, t] of model.named) {
          const w = ck.weights.get(name);
          if (!w) throw new CheckpointError(lastDir, `model.safetensors lacks ${name}`);
          if (w.data.length !== t.size) {
            throw new CheckpointError(
              lastDir,
              `${name} has shape [${w.shape}], the model [${t.shape}]`,
            );
          }
        }
        try {
          optimizer.loadState(ck.optimizer);
        } catch (e) {
          throw new CheckpointError(lastDir, (e as Error).message);
        }
        for (const [name, t] of model.named) t.write(ck.weights.get(name)!.data);
        state = ck.state;
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
        await Deno.writeTextFile(logPath, "", { createNew: true });
        if (opts.args !== undefined) {
          await Deno.writeTextFile(
            `${out}/args.json`,
            JSON.stringify(opts.args, null, 2) + "\n",
            { createNew: true },
          );
        }
      }
    } catch (e) {
      optimizer.destroy();
      throw e;
    }
    if (state.stopReason) {
      say(`the run in ${out} has already ended (${state.stopReason})`);
      return { state, stepsRun: 0, totalSteps, outDir: out };
    }

    const logFile = await Deno.open(logPath, { append: true, create: true });
    const writeLog = (o: Record<string, unknown>) =>
      logFile.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\n"));
    const bar = new ProgressBar("train", {
      total: totalSteps - state.step,
      unit: "steps",
      silent: !opts.progress,
    });
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
      writeLog({
        type: "validation",
        step: state.step,
        ndcg_cut_10: ndcg10,
        best: state.bestMetric,
        best_step: state.bestStep,
        bad_validations: state.badValidations,
        seconds: (performance.now() - t0) / 1000,
      });
      bar.log(
        `step ${state.step}: validation nDCG@10 ${ndcg10.toFixed(4)}` +
          (improved ? " (best)" : ` (best ${state.bestMetric!.toFixed(4)} at ${state.bestStep})`),
      );
      if (improved) await writeCheckpoint(model, null, state, bestDir);
      if (state.badValidations >= patience) state.stopReason = "early stopping";
    };
    let savedAt = -1;
    const save = async () => {
      if (savedAt === state.step) return;
      savedAt = state.step;
      state.rngState = rng.state;
      await writeCheckpoint(model, optimizer, state, lastDir);
    };

    let stepsRun = 0;
    try {
      if (state.step === 0 && data.validation && state.history.length === 0) await validate();
      let lastLoss = NaN, lastRate = NaN;
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
        lastLoss = r.loss;
        lastRate = B / seconds;
        writeLog({
          type: "step",
          step: state.step,
          epoch: state.epoch,
          loss: r.loss,
          lr,
          grad_norm: r.gradNorm,
          triples_per_s: lastRate,
          seconds,
        });
        bar.update(
          stepsRun,
          `loss ${lastLoss.toFixed(4)} ${lastRate.toPrecision(3)} triples/s`,
        );
        if (state.step % evalEvery === 0) {
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
      bar.finish(state.stopReason ? `done: ${state.stopReason}` : "interrupted");
    } catch (e) {
      bar.finish("failed");
      if (e instanceof NonFiniteTrainingError) {
        writeLog({ type: "error", step: e.step, message: e.message });
        const kept = (await exists(lastDir)) ? `${lastDir} is kept` : "no checkpoint was written";
        e.message += ` (no update applied; the last good checkpoint, ${kept})`;
      }
      throw e;
    } finally {
      logFile.close();
    }
    if (state.stopReason) say(`stopped: ${state.stopReason} at step ${state.step}`);
    return { state, stepsRun, totalSteps, outDir: out };
  } finally {
    optimizer.destroy();
  }
}

/**
 * Checks, without changing anything, that `train` will accept output directory `outDir`: for a
 * fresh run, that it holds no trace of a run (else {@link RunExistsError}); with `resume`, that
 * it holds a checkpoint to continue, `last/` or the `last.old/` an interrupted save leaves
 * (else {@link CheckpointError}, which says what to do when only `best/` is left). `train`
 * checks the same under the directory's lock; a CLI calls this first to fail before loading
 * data.
 *
 * @example
 * ```ts
 * await checkOutDir("runs/x", false); // throws when runs/x already holds a run
 * ```
 */
export async function checkOutDir(outDir: string, resume: boolean): Promise<void> {
  const lastDir = `${outDir}/last`, bestDir = `${outDir}/best`;
  if (!resume) {
    const found = [];
    for (const f of RUN_FILES) if (await exists(`${outDir}/${f}`)) found.push(f);
    if (found.length) throw new RunExistsError(outDir, found);
    return;
  }
  if (!(await exists(outDir))) {
    throw new CheckpointError(lastDir, `no checkpoint there (${outDir} does not exist)`);
  }
  if ((await exists(lastDir)) || (await exists(`${lastDir}.old`))) return;
  if ((await exists(bestDir)) || (await exists(`${bestDir}.old`))) {
    throw new CheckpointError(
      lastDir,
      `no checkpoint there: ${lastDir} (with the optimizer state) is gone, and ${bestDir} ` +
        `alone cannot be continued; to train that model further, start a new run from it ` +
        `(--model ${bestDir}) in another output directory`,
    );
  }
  throw new CheckpointError(
    lastDir,
    `no checkpoint there${
      (await exists(`${outDir}/log.jsonl`))
        ? ` (the run in ${outDir} saved none; start afresh in another output directory)`
        : ""
    }`,
  );
}

/** What a fresh run refuses to find in its output directory: the traces of another run. */
const RUN_FILES = ["last", "best", "log.jsonl", "args.json", "last.old", "best.old"];

/** Unfinished copies an interrupted save leaves (never the only complete copy of anything). */
const UNFINISHED = /^(?:(?:last|best)\.(?:staging(?:\.|$)|tmp-)|log\.jsonl\.tmp-)/;

/** Removes {@link UNFINISHED} entries of `out` (under its lock), saying what went. */
async function removeUnfinished(out: string, say: (m: string) => void): Promise<void> {
  const gone: string[] = [];
  for await (const e of Deno.readDir(out)) {
    if (!UNFINISHED.test(e.name)) continue;
    await Deno.remove(`${out}/${e.name}`, { recursive: true });
    gone.push(e.name);
  }
  if (gone.length) {
    say(`removed what an interrupted save left in ${out}: ${gone.sort().join(", ")}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Drops log lines after `step` (written by an interrupted run after its last checkpoint), and a
 * line cut short by the interruption; rewrites the file atomically, only when something goes (or
 * its last line lacks its newline).
 * Returns how many lines were dropped.
 */
async function truncateLog(path: string, step: number): Promise<number> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  const lines = text.split("\n").filter((line) => line.trim());
  const kept = lines.filter((line) => {
    try {
      return (JSON.parse(line).step ?? 0) <= step;
    } catch {
      return false;
    }
  });
  if (kept.length === lines.length && (text === "" || text.endsWith("\n"))) return 0;
  const f = await atomicFile(path);
  try {
    await Deno.writeTextFile(f.tmp, kept.map((l) => l + "\n").join(""));
    await f.commit();
  } catch (e) {
    await f.abort();
    throw e;
  }
  return lines.length - kept.length;
}

/**
 * One training step ({@link trainStep}): tokenize the batch's queries (query length) and
 * documents (document length); the encoder forward for Q, P and N recorded on one tape that
 * watches every parameter; the loss; backward; the global gradient norm (clipped when asked; NaN
 * or Inf stops training with the names of the offending tensors, see
 * {@link NonFiniteTrainingError}); the optimizer update with the given learning rate.
 * Everything runs inside one tensor arena, so the step's activations and gradients are freed
 * when it ends. {@link batchLoss} is the same forward without tape or update.
 *
 * @module
 */
import { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { synchronize } from "../gpu/kernels.ts";
import { type Tensor, withArena } from "../gpu/tensor.ts";
import { infoNceLossTensor } from "../losses/infonce.ts";
import {
  type InBatchIndexing,
  type MarginError,
  marginLossTensor,
  type MarginTarget,
} from "../losses/margin.ts";
import { marginMseLossTensor } from "../losses/margin_mse.ts";
import { padBatch, tokenizeFor } from "../models/encode.ts";
import type { TextRole } from "../models/st_layout.ts";
import { encoderForward } from "../models/encoder.ts";
import type { LoadedEncoder } from "../models/hf.ts";
import type { Triple } from "./data.ts";
import { type AdamW, clipGradNorm } from "./optimizer.ts";
import type { LossKind } from "./options.ts";

/** Raised when the loss or a gradient is NaN or Inf; `last/` is left as it was. */
export class NonFiniteTrainingError extends Error {
  /**
   * The error of step `step`, saying what was not finite.
   *
   * @param step the step that failed (1-based)
   * @param detail what was not finite
   */
  constructor(readonly step: number, detail: string) {
    super(`training stopped at step ${step}: ${detail}`);
    this.name = "NonFiniteTrainingError";
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

function tokens(model: LoadedEncoder, texts: string[], length: number, role: TextRole) {
  const { ids, poolSkip } = tokenizeFor(model, texts, length, role);
  return padBatch(ids, model.config.padId, poolSkip);
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
      const forward = async (texts: string[], length: number, role: TextRole) =>
        (await encoderForward(gpu, model.config, model.params, tokens(model, texts, length, role), {
          tape,
        })).pooled;
      const q = await forward(batch.map((t) => t.query), ctx.queryLength, "query");
      const p = await forward(batch.map((t) => t.positive), ctx.docLength, "document");
      const n = await forward(batch.map((t) => t.negative), ctx.docLength, "document");
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
    const forward = async (texts: string[], length: number, role: TextRole) =>
      (await encoderForward(gpu, model.config, model.params, tokens(model, texts, length, role)))
        .pooled;
    const q = await forward(batch.map((t) => t.query), ctx.queryLength, "query");
    const p = await forward(batch.map((t) => t.positive), ctx.docLength, "document");
    const n = await forward(batch.map((t) => t.negative), ctx.docLength, "document");
    const loss = ctx.loss === "margin"
      ? await marginLossTensor(q, p, n, ctx.margin!)
      : ctx.loss === "margin-mse"
      ? await marginMseLossTensor(q, p, n, teacher!)
      : await infoNceLossTensor(q, p, n, { scale: ctx.infonceScale });
    return (await loss.read())[0];
  }, () => []);
}

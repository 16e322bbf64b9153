/**
 * One training step ({@link trainStep}): tokenize the batch's queries (query length) and
 * documents (document length); the encoder forward for Q, P and N recorded on one tape that
 * watches every parameter, or in chunks with cached embedding gradients (GradCache, for batches
 * larger than memory allows); the loss; backward; the global gradient norm (clipped when asked; NaN
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
import { copyElements, Tensor, withArena } from "../gpu/tensor.ts";
import { axpyInto } from "../ops/elementwise.ts";
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
  /**
   * Triples encoded at once (GradCache); absent or 0, or at least the batch: the whole batch on
   * one tape.
   */
  chunkSize?: number;
}

function tokens(model: LoadedEncoder, texts: string[], length: number, role: TextRole) {
  const { ids, poolSkip } = tokenizeFor(model, texts, length, role);
  return padBatch(ids, model.config.padId, poolSkip);
}

/** The batch's three encoder inputs: queries, positives, negatives, with role and length. */
function parts(
  ctx: Pick<StepContext, "queryLength" | "docLength">,
  batch: readonly Triple[],
): [texts: string[], length: number, role: TextRole][] {
  return [
    [batch.map((t) => t.query), ctx.queryLength, "query"],
    [batch.map((t) => t.positive), ctx.docLength, "document"],
    [batch.map((t) => t.negative), ctx.docLength, "document"],
  ];
}

/** The step's loss over the batch's embeddings Q, P, N (recorded on `tape` when given). */
function lossTensor(
  ctx: Pick<StepContext, "loss" | "margin" | "infonceScale">,
  [q, p, n]: Tensor[],
  teacher: { pos: number[]; neg: number[] } | undefined,
  tape?: Tape,
): Promise<Tensor> {
  if (ctx.loss === "margin") return marginLossTensor(q, p, n, { ...ctx.margin!, tape });
  if (ctx.loss === "margin-mse") {
    if (!teacher) throw new Error("Margin-MSE needs teacher scores");
    return marginMseLossTensor(q, p, n, teacher, { tape });
  }
  return infoNceLossTensor(q, p, n, { scale: ctx.infonceScale, tape });
}

/**
 * The loss tensor and every parameter's gradient for one batch, on tensors of the enclosing
 * arena. Without chunking: Q, P and N on one tape. With `chunkSize` below the batch (the
 * GradCache technique): every embedding computed in chunks without the tape, the loss and its
 * gradient with respect to the embeddings computed once for the whole batch (so in-batch and
 * distributed targets still see all B x B pairs), then each chunk encoded again on a tape and
 * back-propagated from its slice of that gradient, the parameters' gradients summed over
 * chunks: the same gradients to f32 rounding, activation memory bounded by the chunk.
 */
async function batchGradients(
  ctx: Omit<StepContext, "optimizer" | "maxGradNorm">,
  batch: readonly Triple[],
  teacher: { pos: number[]; neg: number[] } | undefined,
  forwardDone: () => Promise<void> = () => Promise.resolve(),
): Promise<{ loss: Tensor; grads: Map<string, Tensor>; release: () => void }> {
  const { gpu, model } = ctx;
  const chunk = ctx.chunkSize ?? 0;
  if (!(chunk > 0 && chunk < batch.length)) {
    const tape = new Tape();
    tape.watch(...model.named.values());
    const embeddings: Tensor[] = [];
    for (const [texts, length, role] of parts(ctx, batch)) {
      const b = tokens(model, texts, length, role);
      embeddings.push((await encoderForward(gpu, model.config, model.params, b, { tape })).pooled);
    }
    const loss = await lossTensor(ctx, embeddings, teacher, tape);
    await forwardDone();
    await tape.backward(loss);
    const grads = new Map<string, Tensor>();
    for (const [name, t] of model.named) grads.set(name, tape.grad(t)!);
    return { loss, grads, release: () => tape.dispose() };
  }

  const B = batch.length, H = model.config.hidden;
  const chunks: [start: number, rows: number][] = [];
  for (let s = 0; s < B; s += chunk) chunks.push([s, Math.min(chunk, B - s)]);
  const inputs = parts(ctx, batch).map(([texts, length, role]) =>
    chunks.map(([s, rows]) => tokens(model, texts.slice(s, s + rows), length, role))
  );
  // 1. Every embedding, chunk by chunk, without the tape (each chunk's activations freed).
  const embeddings = inputs.map(() => Tensor.zeros(gpu, [B, H]));
  for (const [k, part] of inputs.entries()) {
    for (const [c, b] of part.entries()) {
      await withArena(async () => {
        const { pooled } = await encoderForward(gpu, model.config, model.params, b);
        copyElements(pooled, 0, embeddings[k], chunks[c][0] * H, chunks[c][1] * H);
      }, () => []);
    }
  }
  // 2. The loss over the whole batch and its gradient with respect to the embeddings.
  const lossTape = new Tape();
  lossTape.watch(...embeddings);
  const loss = await lossTensor(ctx, embeddings, teacher, lossTape);
  await forwardDone(); // (the chunks' second forward counts as backward)
  await lossTape.backward(loss);
  const seeds = embeddings.map((e) => lossTape.grad(e)!);
  // 3. Each chunk again on a tape, back-propagated from its slice; gradients summed.
  const grads = new Map<string, Tensor>();
  for (const [name, t] of model.named) grads.set(name, Tensor.zeros(gpu, t.shape));
  for (const [k, part] of inputs.entries()) {
    for (const [c, b] of part.entries()) {
      const [start, rows] = chunks[c];
      await withArena(async () => {
        const tape = new Tape();
        tape.watch(...model.named.values());
        try {
          const { pooled } = await encoderForward(gpu, model.config, model.params, b, { tape });
          const seed = Tensor.zeros(gpu, [rows, H]);
          copyElements(seeds[k], start * H, seed, 0, rows * H);
          await tape.backward(pooled, seed);
          for (const [name, t] of model.named) await axpyInto(gpu, tape.grad(t)!, grads.get(name)!);
        } finally {
          tape.dispose();
        }
      }, () => []);
    }
  }
  return { loss, grads, release: () => lossTape.dispose() };
}

/**
 * One optimizer step on a batch of triples: forward (Q, P, N on one tape, or in chunks of
 * `ctx.chunkSize` with cached embedding gradients), loss, backward, gradient norm (and
 * clipping), update with learning rate `lr`. Throws {@link NonFiniteTrainingError} (without
 * updating) when the loss or a gradient is not finite. With `time`, the GPU is synchronized after
 * each phase and the phases' wall times returned.
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
  const { gpu } = ctx;
  return await withArena(async () => {
    const t0 = performance.now();
    let t1 = t0;
    const { loss, grads, release } = await batchGradients(ctx, batch, teacher, async () => {
      if (opts.time) await synchronize(gpu);
      t1 = performance.now();
    });
    try {
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
    } finally {
      release();
    }
  }, () => []);
}

/**
 * The loss of a batch and every parameter's gradient, read back to the host, without an update
 * (for checks: the chunked step's gradients against the unchunked one's).
 */
export async function batchLossAndGradients(
  ctx: Omit<StepContext, "optimizer" | "maxGradNorm">,
  batch: readonly Triple[],
  teacher?: { pos: number[]; neg: number[] },
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  return await withArena(async () => {
    const { loss, grads, release } = await batchGradients(ctx, batch, teacher);
    try {
      const out = new Map<string, Float32Array>();
      for (const [name, g] of grads) out.set(name, await g.read() as Float32Array);
      return { loss: (await loss.read())[0], grads: out };
    } finally {
      release();
    }
  }, () => []);
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
    const embeddings: Tensor[] = [];
    for (const [texts, length, role] of parts(ctx, batch)) {
      const b = tokens(model, texts, length, role);
      embeddings.push((await encoderForward(gpu, model.config, model.params, b)).pooled);
    }
    return (await (await lossTensor(ctx, embeddings, teacher)).read())[0];
  }, () => []);
}

/**
 * In-batch InfoNCE, a.k.a. the multiple-negatives ranking loss of sentence-transformers. WGSL in
 * `kernels/infonce.wgsl` (the loss over cosines) and `kernels/similarity.wgsl` (the cosines).
 *
 * Dimension legend: B triples (q_j, p_j, n_j) (negatives optional), embeddings Q, P, N of B x D.
 * Row i's logits are scale · [cos(q_i, p_j) for all j, cos(q_i, n_j) for all j]: every other
 * positive and every hard negative of the batch is a candidate; the label of row i is i; the
 * loss is the mean cross-entropy over rows.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";
import { cosineSimilarityMatrix } from "../ops/similarity.ts";
import {
  LOSS_KERNEL_CONSTANTS,
  type LossResult,
  notOnTape,
  recordLoss,
  runLoss,
} from "./common.ts";

/** The logit scale of sentence-transformers' MultipleNegativesRankingLoss. */
export const DEFAULT_INFONCE_SCALE = 20;

/** Options of {@link infoNceLoss}. */
export interface InfoNceOptions {
  /** Multiplies the cosines into logits. Default 20. Exclusive with `temperature`. */
  scale?: number;
  /** Divides the cosines into logits (scale = 1 / temperature). Exclusive with `scale`. */
  temperature?: number;
  /** Norm floor of the cosines. Default 1e-8. */
  eps?: number;
}

/** Options of {@link infoNceLossTensor}: {@link InfoNceOptions} plus the tape. */
export interface InfoNceTensorOptions extends InfoNceOptions {
  /** Record the backward steps here. */
  tape?: Tape;
}

/** The logit scale the options ask for; throws on invalid or conflicting values. */
export function infoNceScale(opts: InfoNceOptions): number {
  if (opts.scale !== undefined && opts.temperature !== undefined) {
    throw new RangeError("infoNceLoss: give either scale or temperature, not both");
  }
  const scale = opts.temperature !== undefined
    ? 1 / opts.temperature
    : opts.scale ?? DEFAULT_INFONCE_SCALE;
  if (!Number.isFinite(scale) || scale <= 0) {
    throw new RangeError(
      `infoNceLoss: the scale must be a positive finite number, got ${
        opts.temperature !== undefined ? `temperature ${opts.temperature}` : `scale ${scale}`
      }`,
    );
  }
  return scale;
}

/**
 * The in-batch InfoNCE loss of Q, P (and hard negatives N, or null) as a [1] tensor; with `tape`,
 * the backward steps are recorded.
 *
 * @example
 * ```ts
 * const loss = await infoNceLossTensor(q, p, n, { scale: 20, tape });
 * ```
 */
export async function infoNceLossTensor(
  q: Tensor,
  p: Tensor,
  n: Tensor | null,
  opts: InfoNceTensorOptions = {},
): Promise<Tensor> {
  const scale = infoNceScale(opts);
  for (const [name, t] of [["p", p], ["n", n]] as const) {
    if (!t) continue;
    if (t.shape.length !== 2 || q.shape.length !== 2 || t.shape.join() !== q.shape.join()) {
      throw new RangeError(`infoNceLoss: q is [${q.shape}], ${name} is [${t.shape}]: both B x D`);
    }
  }
  const gpu = q.gpu;
  const tape = opts.tape;
  const b = q.shape[0];
  const onTape = { tape, eps: opts.eps, releaseAfterBackward: true };
  const sp = await cosineSimilarityMatrix(q, p, onTape);
  const sn = n ? await cosineSimilarityMatrix(q, n, onTape) : null;
  const lse = Tensor.zeros(gpu, [b], "f32", "infonce logsumexp");
  const loss = Tensor.zeros(gpu, [1], "f32", "infonce loss");
  const snBinding = sn ?? sp; // not read without hard negatives
  const block = (mode: number) =>
    params({ batch: b, hasNeg: sn !== null, mode, scale: f32(scale) });
  dispatch(gpu, {
    pipeline: await pipeline(gpu, "infonce.wgsl", "infonce_forward", LOSS_KERNEL_CONSTANTS),
    buffers: [sp, snBinding, lse, loss],
    params: block(0),
    workgroups: [1],
  });
  const cosines = sn ? [sp, sn] : [sp];
  const owned = [...notOnTape(tape, cosines), lse];
  recordLoss(tape, "infoNceLoss", cosines, loss, owned, async () => {
    const dLoss = tape!.grad(loss)!;
    const backward = await pipeline(
      gpu,
      "infonce.wgsl",
      "infonce_backward",
      LOSS_KERNEL_CONSTANTS,
    );
    for (const [mode, t] of [[0, sp], [1, sn]] as const) {
      const d = t && tape!.grad(t);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: backward,
        buffers: [sp, snBinding, lse, dLoss, d],
        params: block(mode),
        workgroups: [Math.ceil((b * b) / LOSS_KERNEL_CONSTANTS.GRAD_WG)],
      });
    }
  });
  return loss;
}

/**
 * In-batch InfoNCE and its gradients w.r.t. Q, P and N for embeddings given as plain arrays
 * (B rows of D numbers); pass `n` null for no hard negatives (then `dn` is empty). Computed by
 * the WGSL kernels; asynchronous: it returns a Promise, and invalid input rejects it.
 *
 * @example
 * ```ts
 * const { loss, dq, dp, dn } = await infoNceLoss(q, p, n, { scale: 20 });
 * ```
 */
export async function infoNceLoss(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[] | null,
  options: InfoNceOptions = {},
): Promise<LossResult> {
  infoNceScale(options);
  return await runLoss(
    q,
    p,
    n,
    (tape, tq, tp, tn) => infoNceLossTensor(tq, tp, tn, { ...options, tape }),
  );
}

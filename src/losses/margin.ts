/**
 * The relevance-margin loss family (Gienapp, Deckers, Potthast, Scells, ICTIR 2025,
 * arXiv 2407.21515), as the authors' released code computes it. WGSL in
 * `kernels/margin_loss.wgsl` (the loss over cosines) and `kernels/similarity.wgsl` (the cosines).
 *
 * Dimension legend: B triples (q_j, p_j, n_j), embeddings Q, P, N of B x D.
 *
 * - margin m_j = cos(q_j, p_j) - cos(q_j, n_j) (shape B);
 * - in-batch margin M[i, j] = cos(q_j, p_j) - cos(q_i, n_j) (B x B; "reference" indexing, the
 *   positive by column as `pos.diag() - neg` broadcasts), or cos(q_i, p_i) - cos(q_i, n_j)
 *   ("per-query" indexing);
 * - targets: a static number c; adaptive T_j = cos(p_j, n_j)/2 + 1/2 (B x B cos(p_i, n_j)/2 + 1/2
 *   with in-batch negatives); distributed T[i, j] = cos(p_i, n_j)/2 + 1/2 compared with m_j for
 *   every i (never with in-batch negatives);
 * - error e(d), d = margin - target: l1 |d|, l2 d², soft log(1 + exp(-d)); the loss is the mean of
 *   e over all B or B x B elements;
 * - the target stays on the graph (gradients reach P and N through it) unless `detachTarget`.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";
import { cosineSimilarityMatrix, cosineSimilarityRows } from "../ops/similarity.ts";
import {
  LOSS_KERNEL_CONSTANTS,
  type LossResult,
  notOnTape,
  recordLoss,
  runLoss,
} from "./common.ts";

export type { LossResult } from "./common.ts";

/** The margin target: adaptive, distributed, or a static number. */
export type MarginTarget = "adaptive" | "distributed" | number;

/** The error applied to d = margin - target. */
export type MarginError = "l1" | "l2" | "soft";

/**
 * How the in-batch margin pairs positives with negatives: "reference" (the authors' code)
 * M[i, j] = cos(q_j, p_j) - cos(q_i, n_j); "per-query" M[i, j] = cos(q_i, p_i) - cos(q_i, n_j).
 */
export type InBatchIndexing = "reference" | "per-query";

/** Options of {@link marginLoss}. */
export interface MarginLossOptions {
  /** "adaptive", "distributed", or a static target margin. */
  target: MarginTarget;
  /** Use every negative of the batch for every query (B x B margins). Default false. */
  inBatch?: boolean;
  /** The error function. Default "l2" (the reference's default). */
  error?: MarginError;
  /** Treat the target as a constant: no gradient flows through it into P and N. Default false. */
  detachTarget?: boolean;
  /** The in-batch indexing; only read with `inBatch`. Default "reference". */
  inBatchIndexing?: InBatchIndexing;
  /** Norm floor of the cosines. Default 1e-8. */
  eps?: number;
}

/** Options of {@link marginLossTensor}: {@link MarginLossOptions} plus the tape. */
export interface MarginLossTensorOptions extends MarginLossOptions {
  /** Record the backward steps here (the loss's and the cosines'). */
  tape?: Tape;
}

const ERRORS: Record<MarginError, number> = { l1: 0, l2: 1, soft: 2 };

/** The options of the margin loss with defaults filled in, after validation. */
export interface ResolvedMarginOptions {
  /** See {@link MarginLossOptions.target}. */
  target: MarginTarget;
  /** See {@link MarginLossOptions.inBatch}. */
  inBatch: boolean;
  /** See {@link MarginLossOptions.error}. */
  error: MarginError;
  /** See {@link MarginLossOptions.detachTarget}. */
  detachTarget: boolean;
  /** See {@link MarginLossOptions.inBatchIndexing}. */
  inBatchIndexing: InBatchIndexing;
  /** See {@link MarginLossOptions.eps}. */
  eps: number | undefined;
}

/**
 * Validates margin-loss options and fills in defaults; throws a RangeError that names the
 * offending option (distributed targets with in-batch negatives among them).
 */
export function resolveMarginOptions(opts: MarginLossOptions): ResolvedMarginOptions {
  const target = opts?.target;
  if (typeof target === "number") {
    if (!Number.isFinite(target)) {
      throw new RangeError(`marginLoss: a static target must be a finite number, got ${target}`);
    }
  } else if (target !== "adaptive" && target !== "distributed") {
    throw new RangeError(
      `marginLoss: target must be "adaptive", "distributed" or a number, got ${
        JSON.stringify(target)
      }`,
    );
  }
  const error = opts.error ?? "l2";
  if (!(error in ERRORS)) {
    throw new RangeError(
      `marginLoss: error must be "l1", "l2" or "soft", got ${JSON.stringify(error)}`,
    );
  }
  const inBatchIndexing = opts.inBatchIndexing ?? "reference";
  if (inBatchIndexing !== "reference" && inBatchIndexing !== "per-query") {
    throw new RangeError(
      `marginLoss: inBatchIndexing must be "reference" or "per-query", got ${
        JSON.stringify(inBatchIndexing)
      }`,
    );
  }
  const inBatch = opts.inBatch ?? false;
  if (inBatch && target === "distributed") {
    throw new RangeError(
      "marginLoss: distributed targets cannot be combined with in-batch negatives (the " +
        "reference implementation rejects this too): the distributed target already compares " +
        'each margin with every negative of the batch. Use inBatch: false, or target "adaptive" ' +
        "or a number with inBatch: true.",
    );
  }
  return {
    target,
    inBatch,
    error,
    detachTarget: opts.detachTarget ?? false,
    inBatchIndexing,
    eps: opts.eps,
  };
}

/**
 * The margin loss of embeddings Q, P, N (B x D tensors) as a [1] tensor, computed by the WGSL
 * kernels; with `tape`, the backward steps (loss, then cosines) are recorded so gradients reach
 * whatever produced Q, P and N.
 *
 * @example
 * ```ts
 * const loss = await marginLossTensor(q, p, n, { target: "adaptive", inBatch: true, tape });
 * await tape.backward(loss);
 * ```
 */
export async function marginLossTensor(
  q: Tensor,
  p: Tensor,
  n: Tensor,
  opts: MarginLossTensorOptions,
): Promise<Tensor> {
  const o = resolveMarginOptions(opts);
  for (const [name, t] of [["p", p], ["n", n]] as const) {
    if (t.shape.length !== 2 || q.shape.length !== 2 || t.shape.join() !== q.shape.join()) {
      throw new RangeError(`marginLoss: q is [${q.shape}], ${name} is [${t.shape}]: both B x D`);
    }
  }
  const gpu = q.gpu;
  const tape = opts.tape;
  const b = q.shape[0];
  const onTape = { tape, eps: o.eps, releaseAfterBackward: true };
  const pos = await cosineSimilarityRows(q, p, onTape);
  const neg = o.inBatch
    ? await cosineSimilarityMatrix(q, n, onTape)
    : await cosineSimilarityRows(q, n, onTape);
  const targetOpts = o.detachTarget ? { eps: o.eps } : onTape;
  let tgt: Tensor | null = null;
  if (o.target === "distributed" || (o.target === "adaptive" && o.inBatch)) {
    tgt = await cosineSimilarityMatrix(p, n, targetOpts);
  } else if (o.target === "adaptive") {
    tgt = await cosineSimilarityRows(p, n, targetOpts);
  }

  const distributed = o.target === "distributed";
  const rows = o.inBatch || distributed ? b : 1;
  const cols = b;
  const posByRow = o.inBatch && o.inBatchIndexing === "per-query";
  const block = params({
    rows,
    cols,
    posByRow,
    negBroadcast: distributed,
    targetMode: tgt ? 1 : 0,
    errorFn: ERRORS[o.error],
    staticTarget: f32(typeof o.target === "number" ? o.target : 0),
    invCount: f32(1 / (rows * cols)),
  });
  // With a static target no tgt is read; any read-only buffer fills its binding.
  const tgtBinding = tgt ?? pos;
  const loss = Tensor.zeros(gpu, [1], "f32", "margin loss");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, "margin_loss.wgsl", "margin_forward", LOSS_KERNEL_CONSTANTS),
    buffers: [pos, neg, tgtBinding, loss],
    params: block,
    workgroups: [1],
  });

  const cosines = tgt ? [pos, neg, tgt] : [pos, neg];
  recordLoss(tape, "marginLoss", cosines, loss, notOnTape(tape, cosines), async () => {
    const dLoss = tape!.grad(loss)!;
    const grads: [string, Tensor | null, number][] = [
      ["margin_backward_pos", pos, posByRow ? rows : cols],
      ["margin_backward_neg", neg, distributed ? cols : rows * cols],
      ["margin_backward_target", tgt, rows * cols],
    ];
    for (const [entry, t, threads] of grads) {
      const d = t && tape!.grad(t);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: await pipeline(gpu, "margin_loss.wgsl", entry, LOSS_KERNEL_CONSTANTS),
        buffers: [pos, neg, tgtBinding, dLoss, d],
        params: block,
        workgroups: [Math.ceil(threads / LOSS_KERNEL_CONSTANTS.GRAD_WG)],
      });
    }
  });
  return loss;
}

/**
 * The margin loss and its gradients w.r.t. Q, P and N for embeddings given as plain arrays
 * (B rows of D numbers each), computed by the WGSL kernels on the process's GPU. Asynchronous:
 * it returns a Promise (GPU read-back is asynchronous); invalid options reject it.
 *
 * @example
 * ```ts
 * const { loss, dq, dp, dn } = await marginLoss(q, p, n, { target: "adaptive", inBatch: true });
 * ```
 */
export async function marginLoss(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[],
  options: MarginLossOptions,
): Promise<LossResult> {
  resolveMarginOptions(options);
  return await runLoss(
    q,
    p,
    n,
    (tape, tq, tp, tn) => marginLossTensor(tq, tp, tn!, { ...options, tape }),
  );
}

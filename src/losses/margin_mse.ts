/**
 * Margin-MSE (Hofstätter et al. 2020): teacher distillation on the cosine margin. WGSL in
 * `kernels/margin_mse.wgsl` (the loss over cosines) and `kernels/similarity.wgsl` (the cosines).
 *
 * Dimension legend: B triples (q_j, p_j, n_j), embeddings Q, P, N of B x D; the teacher's scores
 * t(q_j, p_j) and t(q_j, n_j) are B numbers each.
 *
 * loss = mean_j (m_j - (t(q_j, p_j) - t(q_j, n_j)))², m_j = cos(q_j, p_j) - cos(q_j, n_j).
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { packParams } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";
import { cosineSimilarityRows } from "../ops/similarity.ts";
import { type LossResult, notOnTape, recordLoss, runLoss } from "./common.ts";

/** The teacher's scores of each triple's positive and negative, B numbers each. */
export interface TeacherScores {
  /** t(q_j, p_j). */
  pos: ArrayLike<number>;
  /** t(q_j, n_j). */
  neg: ArrayLike<number>;
}

/** Options of {@link marginMseLoss}. */
export interface MarginMseOptions {
  /** Norm floor of the cosines. Default 1e-8. */
  eps?: number;
}

/** Options of {@link marginMseLossTensor}: {@link MarginMseOptions} plus the tape. */
export interface MarginMseTensorOptions extends MarginMseOptions {
  /** Record the backward steps here. */
  tape?: Tape;
}

function teacherData(teacher: TeacherScores, b: number): Float32Array {
  const data = new Float32Array(2 * b);
  for (const [offset, name] of [[0, "pos"], [b, "neg"]] as const) {
    const scores = teacher?.[name];
    if (!scores || scores.length !== b) {
      throw new RangeError(
        `marginMseLoss: teacher.${name} has ${scores?.length ?? 0} scores for ${b} triples`,
      );
    }
    for (let j = 0; j < b; j++) {
      if (!Number.isFinite(scores[j])) {
        throw new RangeError(`marginMseLoss: teacher.${name}[${j}] is ${scores[j]}`);
      }
      data[offset + j] = scores[j];
    }
  }
  return data;
}

/**
 * The Margin-MSE loss of Q, P, N (B x D tensors) against teacher scores, as a [1] tensor; with
 * `tape`, the backward steps are recorded (the teacher scores are constants).
 *
 * @example
 * ```ts
 * const loss = await marginMseLossTensor(q, p, n, { pos: [9.1, 7.5], neg: [3.2, 6.9] }, { tape });
 * ```
 */
export async function marginMseLossTensor(
  q: Tensor,
  p: Tensor,
  n: Tensor,
  teacher: TeacherScores,
  opts: MarginMseTensorOptions = {},
): Promise<Tensor> {
  for (const [name, t] of [["p", p], ["n", n]] as const) {
    if (t.shape.length !== 2 || q.shape.length !== 2 || t.shape.join() !== q.shape.join()) {
      throw new RangeError(`marginMseLoss: q is [${q.shape}], ${name} is [${t.shape}]: both B x D`);
    }
  }
  const gpu = q.gpu;
  const tape = opts.tape;
  const b = q.shape[0];
  const scores = Tensor.from(gpu, teacherData(teacher, b), [2 * b], "f32", "teacher scores");
  const onTape = { tape, eps: opts.eps, releaseAfterBackward: true };
  const pos = await cosineSimilarityRows(q, p, onTape);
  const neg = await cosineSimilarityRows(q, n, onTape);
  const loss = Tensor.zeros(gpu, [1], "f32", "margin-mse loss");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, "margin_mse.wgsl", "margin_mse_forward"),
    buffers: [pos, neg, scores, loss],
    params: packParams(b, 0),
    workgroups: [1],
  });
  const owned = [...notOnTape(tape, [pos, neg]), scores];
  recordLoss(tape, "marginMseLoss", [pos, neg], loss, owned, async () => {
    const dLoss = tape!.grad(loss)!;
    const backward = await pipeline(gpu, "margin_mse.wgsl", "margin_mse_backward");
    for (const [mode, t] of [[0, pos], [1, neg]] as const) {
      const d = tape!.grad(t);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: backward,
        buffers: [pos, neg, scores, dLoss, d],
        params: packParams(b, mode),
        workgroups: [Math.ceil(b / 64)],
      });
    }
  });
  return loss;
}

/**
 * Margin-MSE and its gradients w.r.t. Q, P and N for embeddings given as plain arrays (B rows of
 * D numbers) and teacher scores given as arrays of B numbers, computed by the WGSL kernels.
 * Asynchronous: it returns a Promise; invalid input rejects it.
 *
 * @example
 * ```ts
 * const { loss, dq } = await marginMseLoss(q, p, n, { pos: teacherPos, neg: teacherNeg });
 * ```
 */
export async function marginMseLoss(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[],
  teacher: TeacherScores,
  options: MarginMseOptions = {},
): Promise<LossResult> {
  teacherData(teacher, q.length);
  return await runLoss(
    q,
    p,
    n,
    (tape, tq, tp, tn) => marginMseLossTensor(tq, tp, tn!, teacher, { ...options, tape }),
  );
}

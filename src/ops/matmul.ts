/**
 * Matrix multiply (2-D and batched 3-D) and its backward. WGSL in `kernels/matmul.wgsl`.
 *
 * Dimension legend: op(A) is M x K, op(B) is K x N, C is M x N; a leading batch dimension is
 * optional on each operand (a 2-D operand is broadcast over the other's batch).
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { f32, packParams } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use Aᵀ: A is stored K x M. */
  transA?: boolean;
  /** Use Bᵀ: B is stored N x K. */
  transB?: boolean;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Write into this tensor instead of a new one. */
  out?: Tensor;
  /** Add the product to `out` (beta = 1) instead of overwriting it. */
  accumulate?: boolean;
  /** Record the backward step here. */
  tape?: Tape;
}

interface Geometry {
  batch: number;
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
  outShape: number[];
}

function geometry(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Geometry {
  if (a.shape.length < 2 || a.shape.length > 3 || b.shape.length < 2 || b.shape.length > 3) {
    throw new RangeError(`matmul takes 2-D or 3-D operands, got [${a.shape}] and [${b.shape}]`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) {
    throw new RangeError(
      `matmul inner dimensions differ: op(A) [${M}, ${K}], op(B) [${Kb}, ${N}]`,
    );
  }
  const batchA = a.shape.length === 3 ? a.shape[0] : 0;
  const batchB = b.shape.length === 3 ? b.shape[0] : 0;
  if (batchA && batchB && batchA !== batchB) {
    throw new RangeError(`matmul batch sizes differ: ${batchA} and ${batchB}`);
  }
  const batch = Math.max(batchA, batchB, 1);
  const outShape = batchA || batchB ? [batch, M, N] : [M, N];
  return { batch, M, N, K, strideA: batchA ? M * K : 0, strideB: batchB ? K * N : 0, outShape };
}

/** Records C = alpha·op(A)·op(B) + beta·C on the GPU (no tape). */
export async function matmulInto(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
): Promise<void> {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const g = geometry(a, b, transA, transB);
  if (c.size !== g.batch * g.M * g.N) {
    throw new RangeError(`matmul output [${c.shape}] does not hold [${g.outShape}]`);
  }
  const p = await pipeline(gpu, "matmul.wgsl", "matmul_naive", {
    TRANS_A: transA ? 1 : 0,
    TRANS_B: transB ? 1 : 0,
  });
  dispatch(gpu, {
    pipeline: p,
    buffers: [a, b, c],
    params: packParams(
      g.M,
      g.N,
      g.K,
      g.batch,
      g.strideA,
      g.strideB,
      g.M * g.N,
      f32(opts.alpha ?? 1),
      f32(opts.beta ?? 0),
    ),
    workgroups: [Math.ceil(g.N / 8), Math.ceil(g.M / 8), g.batch],
  });
}

/**
 * C = op(A)·op(B), recording dA += dC·op(B)ᵀ-style steps on the tape.
 *
 * @example
 * ```ts
 * const c = await matmul(a, b, { transB: true, tape });
 * ```
 */
export async function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Promise<Tensor> {
  const gpu = a.gpu;
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const g = geometry(a, b, transA, transB);
  if (opts.tape && a.shape.length !== b.shape.length) {
    const broadcast = a.shape.length === 2 ? a : b;
    if (opts.tape.needsGrad(broadcast)) {
      throw new RangeError(
        "matmul: a 2-D operand broadcast over a batch cannot receive a gradient; " +
          "fold the batch into rows (reshape to 2-D) instead",
      );
    }
  }
  const c = opts.out ?? Tensor.zeros(gpu, g.outShape);
  const alpha = opts.alpha ?? 1;
  await matmulInto(gpu, a, b, c, { transA, transB, alpha, beta: opts.accumulate ? 1 : 0 });
  opts.tape?.record("matmul", [a, b], c, async () => {
    const dc = opts.tape!.grad(c)!;
    const da = opts.tape!.grad(a);
    const db = opts.tape!.grad(b);
    if (da) await matmulBackwardA(gpu, dc, b, da, transA, transB, alpha);
    if (db) await matmulBackwardB(gpu, a, dc, db, transA, transB, alpha);
  });
  return c;
}

// dA for C = alpha·op(A)·op(B). With op(A) = A: dA = alpha·dC·op(B)ᵀ; with op(A) = Aᵀ:
// dA = alpha·op(B)·dCᵀ.
async function matmulBackwardA(
  gpu: Gpu,
  dc: Tensor,
  b: Tensor,
  da: Tensor,
  transA: boolean,
  transB: boolean,
  alpha: number,
): Promise<void> {
  if (!transA) await matmulInto(gpu, dc, b, da, { transB: !transB, alpha, beta: 1 });
  else await matmulInto(gpu, b, dc, da, { transA: transB, transB: true, alpha, beta: 1 });
}

// dB for C = alpha·op(A)·op(B). With op(B) = B: dB = alpha·op(A)ᵀ·dC; with op(B) = Bᵀ:
// dB = alpha·dCᵀ·op(A).
async function matmulBackwardB(
  gpu: Gpu,
  a: Tensor,
  dc: Tensor,
  db: Tensor,
  transA: boolean,
  transB: boolean,
  alpha: number,
): Promise<void> {
  if (!transB) await matmulInto(gpu, a, dc, db, { transA: !transA, alpha, beta: 1 });
  else await matmulInto(gpu, dc, a, db, { transA: true, transB: transA, alpha, beta: 1 });
}

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
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";
import { biasAdd, columnSumInto } from "./elementwise.ts";

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

/**
 * Which kernel computes a matmul: the float reference (used for tiny operands only) or the
 * register-blocked one (every other shape, ragged ones included).
 */
export type MatmulVariant = "naive" | "blocked";

/** Block shape of the register-blocked kernel (WGSL override constants of `matmul_blocked`). */
export interface MatmulBlocking {
  /** Row groups of 4 per invocation (1..8): each invocation computes 4·RG rows. */
  RG: number;
  /** Column groups of 4 per invocation (1..4): each invocation computes 4·CG columns. */
  CG: number;
  /** Invocations per workgroup. */
  WG: number;
}

/**
 * The blocking chosen for an adapter. On a software rasteriser (llvmpipe runs 8 invocations in
 * the lanes of one AVX register and loads storage lane by lane) a 32x16 block per invocation
 * amortises the loads best (measured: 16x16 ~15% slower, 64x16 3x slower from spills); on a
 * GPU an 8x8 block keeps register pressure low enough for occupancy, except with `transB`,
 * where a 16x8 block reads B's K-contiguous rows in fewer, longer runs (H100 through Vulkan,
 * 4096x768x3072: 8x8 gives 24.6 TFLOPS for A·B but 7.5 for A·Bᵀ; 16x8 gives 20.6 and 14.5).
 */
export function matmulBlocking(gpu: Gpu, transB = false): MatmulBlocking {
  const WG = Math.min(64, gpu.limits.maxComputeInvocationsPerWorkgroup);
  if (gpu.isSoftware) return { RG: 8, CG: 4, WG };
  return transB ? { RG: 4, CG: 2, WG } : { RG: 2, CG: 2, WG };
}

/**
 * Whether the register-blocked kernel can run these operands: any shape with K > 0 whose operand
 * buffers hold at least one vec4 (the kernel binds them as vec4 arrays too; smaller problems are
 * a handful of products and take the reference kernel).
 */
function blockedApplies(g: Geometry, a: Tensor, b: Tensor): boolean {
  return g.K > 0 && a.buffer.size >= 16 && b.buffer.size >= 16;
}

/**
 * Which operands the blocked kernel reads as vec4 (the stored rows hold whole vec4s) and whether K
 * has a ragged last 4-step (WGSL override constants `VEC_A`, `VEC_B`, `KTAIL`).
 */
function vectorFlags(g: Geometry, transA: boolean, transB: boolean): Record<string, number> {
  return {
    VEC_A: (transA ? g.M : g.K) % 4 === 0 ? 1 : 0,
    VEC_B: (transB ? g.K : g.N) % 4 === 0 ? 1 : 0,
    KTAIL: g.K % 4 === 0 ? 0 : 1,
  };
}

/** Side of the square workgroups of `matmul_naive` (its override `TILE`). */
const NAIVE_TILE = 8;

/**
 * Most 4-steps of k one blocked launch sums: longer K is split into launches accumulating into C
 * (beta 1 after the first), keeping each invocation's loop far below llvmpipe's silent
 * 65535-iteration cap.
 */
export const MATMUL_K4_PER_LAUNCH = 8192;

/** Options of {@link matmulInto}. */
export interface MatmulIntoOptions {
  /** Use Aᵀ: A is stored K x M. */
  transA?: boolean;
  /** Use Bᵀ: B is stored N x K. */
  transB?: boolean;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Scale of the prior contents of C (0 overwrites, 1 accumulates). Default 0. */
  beta?: number;
  /** Force a kernel; by default the blocked kernel wherever its preconditions hold (K > 0, operands of at least 4 elements). */
  variant?: MatmulVariant;
  /** Override the adapter's default blocking (benchmarks and tests). */
  blocking?: Partial<MatmulBlocking>;
  /** Added to every row of C ([N]), in the kernel's store (the blocked kernel only). */
  bias?: Tensor;
}

const placeholders = new WeakMap<Gpu, Tensor>();

/** A one-element buffer bound where the blocked kernel's bias binding is unused. */
function placeholder(gpu: Gpu): Tensor {
  let t = placeholders.get(gpu);
  if (!t || t.destroyed) {
    t = Tensor.zeros(gpu, [1], "f32", "matmul no-bias");
    placeholders.set(gpu, t);
  }
  return t;
}

/**
 * The kernel {@link matmulInto} would use for these operands and options, with its blocking
 * (benchmarks report it).
 */
export function matmulPlan(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  opts: MatmulIntoOptions = {},
): { variant: MatmulVariant; blocking: MatmulBlocking | null } {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const g = geometry(a, b, transA, transB);
  const fits = blockedApplies(g, a, b);
  if (opts.variant === "blocked" && !fits) {
    throw new RangeError(
      `matmul_blocked needs K > 0 and operands of at least 4 elements: ` +
        `M=${g.M} N=${g.N} K=${g.K}`,
    );
  }
  const variant = opts.variant ?? (fits ? "blocked" : "naive");
  return {
    variant,
    blocking: variant === "blocked" ? { ...matmulBlocking(gpu, transB), ...opts.blocking } : null,
  };
}

/**
 * Records C = alpha·op(A)·op(B) + beta·C on the GPU (no tape).
 *
 * @example
 * ```ts
 * await matmulInto(gpu, x, w, y, { transB: true }); // y = x·wᵀ
 * ```
 */
export async function matmulInto(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  c: Tensor,
  opts: MatmulIntoOptions = {},
): Promise<void> {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const g = geometry(a, b, transA, transB);
  if (c.size !== g.batch * g.M * g.N) {
    throw new RangeError(`matmul output [${c.shape}] does not hold [${g.outShape}]`);
  }
  const alpha = f32(opts.alpha ?? 1);
  const beta = opts.beta ?? 0;
  const flags = { TRANS_A: transA ? 1 : 0, TRANS_B: transB ? 1 : 0 };
  const plan = matmulPlan(gpu, a, b, opts);
  if (g.M * g.N === 0) return;
  const paramsFor = (betaNow: number, k4Begin: number, k4End: number) =>
    params({
      M: g.M,
      N: g.N,
      K: g.K,
      batch: g.batch,
      strideA: g.strideA,
      strideB: g.strideB,
      strideC: g.M * g.N,
      alpha,
      beta: f32(betaNow),
      k4Begin,
      k4End,
    });
  if (plan.variant === "blocked") {
    const { RG, CG, WG } = plan.blocking!;
    const p = await pipeline(gpu, "matmul.wgsl", "matmul_blocked", {
      ...flags,
      ...vectorFlags(g, transA, transB),
      RG,
      CG,
      WG,
      HAS_BIAS: opts.bias ? 1 : 0,
    });
    const blocks = Math.ceil(g.M / (4 * RG)) * Math.ceil(Math.ceil(g.N / 4) / CG);
    const groups = Math.ceil(blocks / WG);
    const x = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
    const K4 = Math.ceil(g.K / 4);
    for (let k4 = 0; k4 < K4; k4 += MATMUL_K4_PER_LAUNCH) {
      dispatch(gpu, {
        pipeline: p,
        // A and B twice: as vec4 arrays (bindings 1, 2) and as scalar arrays (bindings 4, 5);
        // the bias (or a placeholder) at 6.
        buffers: [a, b, c, a, b, opts.bias ?? placeholder(gpu)],
        params: paramsFor(k4 === 0 ? beta : 1, k4, Math.min(K4, k4 + MATMUL_K4_PER_LAUNCH)),
        workgroups: [x, Math.ceil(groups / x), g.batch],
      });
    }
    return;
  }
  if (opts.bias) throw new RangeError("matmul: a fused bias needs the blocked kernel");
  if (g.K > 65535) {
    throw new RangeError(`matmul_naive sums at most 65535 terms per output, got K=${g.K}`);
  }
  const p = await pipeline(gpu, "matmul.wgsl", "matmul_naive", { ...flags, TILE: NAIVE_TILE });
  dispatch(gpu, {
    pipeline: p,
    buffers: [a, b, c],
    params: paramsFor(beta, 0, 0),
    workgroups: [Math.ceil(g.N / NAIVE_TILE), Math.ceil(g.M / NAIVE_TILE), g.batch],
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

/** Options of {@link linear}. */
export interface LinearOptions {
  /** W is stored [out, in] (torch.nn.Linear) rather than [in, out]. */
  transB?: boolean;
  /** Record the backward step here. */
  tape?: Tape;
}

/**
 * A dense layer y = x·op(W) + b for x [rows, in], with the bias added in the matmul kernel's
 * store (no separate pass over y). Backward: dx += dy·op(W)ᵀ, dW += (xᵀ·dy in W's layout),
 * db += Σ_rows dy.
 *
 * @example
 * ```ts
 * const h = await linear(x, w, b, { tape }); // w [in, out], b [out]
 * ```
 */
export async function linear(
  x: Tensor,
  w: Tensor,
  b: Tensor,
  opts: LinearOptions = {},
): Promise<Tensor> {
  const gpu = x.gpu;
  const transB = opts.transB ?? false;
  const g = geometry(x, w, false, transB);
  if (x.shape.length !== 2 || w.shape.length !== 2 || b.size !== g.N) {
    throw new RangeError(`linear: x [${x.shape}], W [${w.shape}], b [${b.shape}] do not fit`);
  }
  if (matmulPlan(gpu, x, w, { transB }).variant !== "blocked") {
    // Tiny operands: the reference kernel and a separate bias pass.
    return await biasAdd(await matmul(x, w, { transB, tape: opts.tape }), b, { tape: opts.tape });
  }
  const y = Tensor.zeros(gpu, g.outShape);
  await matmulInto(gpu, x, w, y, { transB, bias: b });
  const tape = opts.tape;
  tape?.record("linear", [x, w, b], y, async () => {
    const dy = tape.grad(y)!;
    const dx = tape.grad(x), dw = tape.grad(w), db = tape.grad(b);
    if (dx) await matmulBackwardA(gpu, dy, w, dx, false, transB, 1);
    if (dw) await matmulBackwardB(gpu, x, dy, dw, false, transB, 1);
    if (db) await columnSumInto(gpu, dy, db);
  });
  return y;
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

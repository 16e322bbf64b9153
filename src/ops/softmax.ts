/**
 * Masked, scaled softmax over the last dimension (attention probabilities), recording its
 * hand-written backward on the tape. WGSL in `kernels/softmax.wgsl`.
 *
 * Dimension legend: scores are [batch, ..., K] (e.g. [batch, heads, q, k]); the key mask is
 * [batch, K], 1 to keep a key, 0 to mask it, the same for every row of a batch element.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Options of {@link softmax}. */
export interface SoftmaxOptions {
  /** Key mask [batch, K] (f32 0/1, or i32/u32 where non-zero keeps); none keeps every key. */
  mask?: Tensor;
  /** Factor applied to the scores before the softmax (e.g. 1/√d_head). Default 1. */
  scale?: number;
  /** Record the backward step here. */
  tape?: Tape;
  /**
   * Kernel: "rows" (one invocation per row, no barriers) or "workgroup" (one workgroup per row,
   * tree reductions). Default: "rows" for rows of at most {@link ROW_KERNEL_MAX_K} keys on
   * software adapters (barriers are expensive there), else "workgroup".
   */
  variant?: "rows" | "workgroup";
}

/**
 * Longest row the one-invocation-per-row kernel takes: its three serial passes must stay under
 * llvmpipe's 65535-iteration loop cap.
 */
export const ROW_KERNEL_MAX_K = 16384;

const FILE = "softmax.wgsl";
/** Invocations per workgroup of the kernels in `softmax.wgsl` (its override `WG`). */
const WG = 64;
const dummies = new WeakMap<Gpu, Tensor>();

/** A one-element buffer bound in place of an absent mask (never read). */
function dummyMask(gpu: Gpu): Tensor {
  let t = dummies.get(gpu);
  if (!t || t.destroyed) {
    t = Tensor.zeros(gpu, [1], "u32", "softmax no-mask");
    dummies.set(gpu, t);
  }
  return t;
}

/**
 * y = softmax(scale · x) over the last dimension, with keys where `mask` is 0 given exactly
 * zero probability (as an additive -inf mask would); a fully masked row gives zeros, not NaN.
 * Backward: dx += scale · y ⊙ (dy - Σ dy ⊙ y). The mask gets no gradient.
 *
 * @example
 * ```ts
 * // scores [batch, heads, q, k], attentionMask [batch, k]
 * const probs = await softmax(scores, { mask: attentionMask, scale: 1 / Math.sqrt(64), tape });
 * ```
 */
export async function softmax(x: Tensor, opts: SoftmaxOptions = {}): Promise<Tensor> {
  if (x.dtype !== "f32") throw new TypeError(`softmax takes f32 scores, got ${x.dtype}`);
  const K = x.shape[x.shape.length - 1] ?? 0;
  const rows = K > 0 ? x.size / K : 0;
  const mask = opts.mask;
  let rowsPerBatch = Math.max(rows, 1);
  if (mask) {
    const batch = x.shape.length >= 2 ? x.shape[0] : 1;
    if (x.shape.length < 2 || mask.size !== batch * K) {
      throw new RangeError(
        `softmax: mask [${mask.shape}] must be [batch, K] for scores [${x.shape}]`,
      );
    }
    rowsPerBatch = Math.max(rows / batch, 1);
  }
  const gpu = x.gpu;
  const scale = opts.scale ?? 1;
  const block = params({
    rows,
    K,
    rows_per_batch: rowsPerBatch,
    scale: f32(scale),
    has_mask: mask !== undefined,
    mask_float: mask?.dtype === "f32",
  });
  const variant = opts.variant ?? (gpu.isSoftware && K <= ROW_KERNEL_MAX_K ? "rows" : "workgroup");
  if (variant === "rows" && K > ROW_KERNEL_MAX_K) {
    throw new RangeError(
      `softmax: the row kernel takes at most ${ROW_KERNEL_MAX_K} keys, got ${K}`,
    );
  }
  const suffix = variant === "rows" ? "_rows" : "";
  // The row kernels run WG rows per workgroup; the workgroup kernels one row per workgroup.
  const grid = variant === "rows" ? grid1d(gpu, rows, WG) : grid1d(gpu, rows);
  const y = Tensor.zeros(gpu, x.shape);
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, `softmax_forward${suffix}`, { WG }),
    buffers: [x, mask ?? dummyMask(gpu), y],
    params: block,
    workgroups: grid,
  });
  const tape = opts.tape;
  tape?.record("softmax", [x], y, async () => {
    const dx = tape.grad(x);
    if (!dx) return;
    dispatch(gpu, {
      pipeline: await pipeline(gpu, FILE, `softmax_backward${suffix}`, { WG }),
      buffers: [tape.grad(y)!, y, dx],
      params: block,
      workgroups: grid,
    });
  });
  return y;
}

/**
 * Reductions, each recording its hand-written backward on the tape: the sum of all elements,
 * the sum over the last dimension, the mean, max and last of the kept positions of a masked
 * sequence (mean, max and last-token pooling), the L2 norm of rows and the L2 normalisation of
 * rows. WGSL in `kernels/reduce.wgsl`.
 *
 * Dimension legend: row-wise ops view x as [rows, cols] with cols the last dimension; the
 * masked mean takes x [B, S, D] and mask [B, S] to [B, D].
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Bindable, dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `reduce.wgsl` (its override `WG`). */
const WG = 64;
/** Most partial sums of the first `sum_partial` pass (one workgroup each). */
const MAX_PARTIALS = 1024;
/** Longest loop a kernel may run: llvmpipe silently ends shader loops after 65535 iterations. */
const MAX_LOOP = 65535;
const FILE = "reduce.wgsl";

/** Options of the reductions. */
export interface ReduceOptions {
  /** Record the backward step here. */
  tape?: Tape;
}

/** Options of {@link l2Normalize}. */
export interface L2NormalizeOptions extends ReduceOptions {
  /** Floor of the norm: y = x / max(‖x‖, eps). Default 1e-12 (PyTorch's F.normalize). */
  eps?: number;
}

interface Fields {
  n?: number;
  rows?: number;
  cols?: number;
  seq?: number;
  maskFloat?: boolean;
  eps?: number;
}

async function run(
  gpu: Gpu,
  entry: string,
  buffers: Bindable[],
  workgroups: [number, number],
  f: Fields,
): Promise<void> {
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, entry, { WG }),
    buffers,
    params: params({
      n: f.n ?? 0,
      rows: f.rows ?? 0,
      cols: f.cols ?? 0,
      seq: f.seq ?? 0,
      mask_float: f.maskFloat ?? false,
      eps: f32(f.eps ?? 0),
    }),
    workgroups,
  });
}

function assertF32(name: string, x: Tensor): void {
  if (x.dtype !== "f32") throw new TypeError(`${name} takes an f32 tensor, got ${x.dtype}`);
}

/** rows x cols view of x over its last dimension. */
function rowsCols(x: Tensor): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols > 0 ? x.size / cols : 0, cols];
}

/** [B, S, D] of a masked pooling's x [B, S, D] and mask [B, S], checked. */
function poolingShape(name: string, x: Tensor, mask: Tensor): [number, number, number] {
  assertF32(name, x);
  if (x.shape.length !== 3 || mask.size !== x.shape[0] * x.shape[1]) {
    throw new RangeError(
      `${name}: need x [B, S, D] and mask [B, S], got [${x.shape}] and [${mask.shape}]`,
    );
  }
  const [B, S, D] = x.shape;
  if (S > MAX_LOOP) throw new RangeError(`${name}: sequences longer than ${MAX_LOOP}`);
  return [B, S, D];
}

/** Shape of x without its last dimension ([1] for a vector). */
function leadingShape(x: Tensor): number[] {
  return x.shape.length > 1 ? x.shape.slice(0, -1) : [1];
}

/**
 * The sum of all elements, as a one-element tensor [1] (two passes: up to 1024 workgroup
 * partial sums, then their sum). Backward: dx += dy.
 *
 * @example
 * ```ts
 * const loss = await sumAll(perExampleLoss, { tape });
 * await tape.backward(loss);
 * ```
 */
export async function sumAll(x: Tensor, opts: ReduceOptions = {}): Promise<Tensor> {
  assertF32("sumAll", x);
  const gpu = x.gpu;
  const n = x.size;
  const out = Tensor.zeros(gpu, [1]);
  const groups = Math.max(1, Math.min(Math.ceil(n / WG), MAX_PARTIALS));
  if (Math.ceil(n / (groups * WG)) > MAX_LOOP) throw new RangeError(`sumAll: ${n} elements`);
  if (groups === 1) {
    await run(gpu, "sum_partial", [x, out], [1, 1], { n });
  } else {
    const partial = Tensor.zeros(gpu, [groups]);
    await run(gpu, "sum_partial", [x, partial], [groups, 1], { n });
    await run(gpu, "sum_partial", [partial, out], [1, 1], { n: groups });
    partial.destroy();
  }
  const tape = opts.tape;
  tape?.record("sumAll", [x], out, async () => {
    const dx = tape.grad(x);
    if (dx) await run(gpu, "sum_all_backward", [tape.grad(out)!, dx], grid1d(gpu, n, WG), { n });
  });
  return out;
}

/**
 * The sum over the last dimension: [..., cols] -> [...] ([1] for a vector). Backward:
 * dx[..., c] += dy[...].
 *
 * @example
 * ```ts
 * const rowSums = await sumLastDim(x, { tape });
 * ```
 */
export async function sumLastDim(x: Tensor, opts: ReduceOptions = {}): Promise<Tensor> {
  assertF32("sumLastDim", x);
  const gpu = x.gpu;
  const [rows, cols] = rowsCols(x);
  const out = Tensor.zeros(gpu, leadingShape(x));
  await run(gpu, "sum_rows_forward", [x, out], grid1d(gpu, rows), { rows, cols });
  const tape = opts.tape;
  tape?.record("sumLastDim", [x], out, async () => {
    const dx = tape.grad(x);
    if (!dx) return;
    await run(gpu, "sum_rows_backward", [tape.grad(out)!, dx], grid1d(gpu, x.size, WG), {
      n: x.size,
      rows,
      cols,
    });
  });
  return out;
}

/**
 * Mean over the kept positions of a masked sequence (mean pooling): x [B, S, D] and mask [B, S]
 * (f32 0/1, or i32/u32 where non-zero keeps) give y[b] = mean of x[b, s] over kept s; a row with
 * no kept position gives zeros, not NaN. Backward: dx[b, s] += dy[b] / count[b] for kept s. The
 * mask gets no gradient.
 *
 * @example
 * ```ts
 * const pooled = await maskedMean(tokenStates, attentionMask, { tape }); // [B, D]
 * ```
 */
export async function maskedMean(
  x: Tensor,
  mask: Tensor,
  opts: ReduceOptions = {},
): Promise<Tensor> {
  const [B, S, D] = poolingShape("maskedMean", x, mask);
  const gpu = x.gpu;
  const maskFloat = mask.dtype === "f32";
  const inv = Tensor.zeros(gpu, [B]);
  await run(gpu, "mask_inverse_count", [mask, inv], grid1d(gpu, B, WG), {
    rows: B,
    seq: S,
    maskFloat,
  });
  const y = Tensor.zeros(gpu, [B, D]);
  await run(gpu, "masked_mean_forward", [x, inv, mask, y], grid1d(gpu, B * D, WG), {
    n: B * D,
    rows: B,
    cols: D,
    seq: S,
    maskFloat,
  });
  const tape = opts.tape;
  const recorded = tape?.record("maskedMean", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) {
      await run(
        gpu,
        "masked_mean_backward",
        [tape.grad(y)!, inv, mask, dx],
        grid1d(gpu, x.size, WG),
        {
          n: x.size,
          rows: B,
          cols: D,
          seq: S,
          maskFloat,
        },
      );
    }
    inv.destroy();
  });
  if (!recorded) inv.destroy();
  return y;
}

/**
 * Max pooling: the largest value of each feature over the kept positions of each sequence, x
 * [B, S, D] and mask [B, S] (f32 0/1 or integers, non-zero keeps) -> [B, D], as
 * sentence-transformers' `pooling_mode_max_tokens`. A row that keeps nothing gives 0 (where
 * sentence-transformers gives -1e9). Backward: dy goes to the first position holding the max.
 *
 * @example
 * ```ts
 * const pooled = await maskedMax(tokenStates, attentionMask, { tape }); // [B, D]
 * ```
 */
export async function maskedMax(
  x: Tensor,
  mask: Tensor,
  opts: ReduceOptions = {},
): Promise<Tensor> {
  const [B, S, D] = poolingShape("maskedMax", x, mask);
  const gpu = x.gpu;
  const f = { n: B * D, rows: B, cols: D, seq: S, maskFloat: mask.dtype === "f32" };
  const y = Tensor.zeros(gpu, [B, D]);
  const at = Tensor.zeros(gpu, [B, D]);
  await run(gpu, "masked_max_forward", [x, y, mask, at], grid1d(gpu, B * D, WG), f);
  const tape = opts.tape;
  const recorded = tape?.record("maskedMax", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) {
      await run(gpu, "masked_max_backward", [tape.grad(y)!, at, dx], grid1d(gpu, B * D, WG), f);
    }
    at.destroy();
  });
  if (!recorded) at.destroy();
  return y;
}

/**
 * Last-token pooling: each sequence's states at its last kept position, x [B, S, D] and mask
 * [B, S] -> [B, D], as sentence-transformers' `pooling_mode_lasttoken` (right padding). A row
 * that keeps nothing gives 0. Backward: dy goes to that position.
 *
 * @example
 * ```ts
 * const pooled = await maskedLast(tokenStates, attentionMask, { tape }); // [B, D]
 * ```
 */
export async function maskedLast(
  x: Tensor,
  mask: Tensor,
  opts: ReduceOptions = {},
): Promise<Tensor> {
  const [B, S, D] = poolingShape("maskedLast", x, mask);
  const gpu = x.gpu;
  const f = { n: B * D, rows: B, cols: D, seq: S, maskFloat: mask.dtype === "f32" };
  const y = Tensor.zeros(gpu, [B, D]);
  await run(gpu, "masked_last_forward", [x, y, mask], grid1d(gpu, B * D, WG), f);
  const tape = opts.tape;
  tape?.record("maskedLast", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) {
      await run(gpu, "masked_last_backward", [tape.grad(y)!, dx, mask], grid1d(gpu, B * D, WG), f);
    }
  });
  return y;
}

/**
 * The L2 norm of each row over the last dimension: [..., cols] -> [...] ([1] for a vector).
 * Backward: dx += dy · x / ‖x‖ (0 for an all-zero row).
 *
 * @example
 * ```ts
 * const norms = await l2Norm(embeddings, { tape });
 * ```
 */
export async function l2Norm(x: Tensor, opts: ReduceOptions = {}): Promise<Tensor> {
  assertF32("l2Norm", x);
  const gpu = x.gpu;
  const [rows, cols] = rowsCols(x);
  const norm = Tensor.zeros(gpu, leadingShape(x));
  await run(gpu, "l2_norm_forward", [x, norm], grid1d(gpu, rows), { rows, cols });
  const tape = opts.tape;
  tape?.record("l2Norm", [x], norm, async () => {
    const dx = tape.grad(x);
    if (!dx) return;
    await run(gpu, "l2_norm_backward", [tape.grad(norm)!, x, norm, dx], grid1d(gpu, x.size, WG), {
      n: x.size,
      rows,
      cols,
    });
  });
  return norm;
}

/**
 * L2 normalisation of each row over the last dimension: y = x / max(‖x‖, eps). Backward:
 * dx += (dy - y·(y·dy)) / ‖x‖ where ‖x‖ > eps, else dx += dy / eps.
 *
 * @example
 * ```ts
 * const unit = await l2Normalize(pooled, { tape }); // embeddings on the unit sphere
 * ```
 */
export async function l2Normalize(x: Tensor, opts: L2NormalizeOptions = {}): Promise<Tensor> {
  assertF32("l2Normalize", x);
  const gpu = x.gpu;
  const [rows, cols] = rowsCols(x);
  const eps = opts.eps ?? 1e-12;
  const y = Tensor.zeros(gpu, x.shape);
  const norm = Tensor.zeros(gpu, [rows]);
  await run(gpu, "l2_normalize_forward", [x, y, norm], grid1d(gpu, rows), { rows, cols, eps });
  const tape = opts.tape;
  const recorded = tape?.record("l2Normalize", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) {
      await run(gpu, "l2_normalize_backward", [tape.grad(y)!, y, norm, dx], grid1d(gpu, rows), {
        rows,
        cols,
        eps,
      });
    }
    norm.destroy();
  });
  if (!recorded) norm.destroy();
  return y;
}

/**
 * LayerNorm over the last dimension with gain and bias, recording its hand-written backward
 * (dx, dgamma, dbeta) on the tape. WGSL in `kernels/layernorm.wgsl`.
 *
 * Dimension legend: x is [..., D] (leading dimensions folded into rows), gamma and beta are [D].
 * The forward saves mean and rstd = 1/sqrt(var + eps) per row for the backward.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import { dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `layernorm.wgsl` (its override `WG`). */
const WG = 64;
const FILE = "layernorm.wgsl";
/** Rows per partial sum of the dgamma/dbeta pass (the WGSL override `CHUNK`). */
const CHUNK = 256;
/** The override constants of every `layernorm.wgsl` pipeline. */
const CONSTANTS = { WG, CHUNK };

/** Options of {@link layerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance. Default 1e-12, BERT's value (PyTorch's default is 1e-5). */
  eps?: number;
  /** Record the backward step here. */
  tape?: Tape;
  /**
   * Row kernels: "rows" (one invocation per row, no barriers) or "workgroup" (one workgroup per
   * row, tree reductions). Default "rows" on software adapters for rows of at most
   * {@link ROW_KERNEL_MAX_D} columns (barriers are expensive there), else "workgroup".
   */
  variant?: "rows" | "workgroup";
}

/** Widest row the one-invocation-per-row kernels take (3 serial passes under llvmpipe's cap). */
export const ROW_KERNEL_MAX_D = 16384;

/**
 * y = (x - mean)/sqrt(var + eps) · gamma + beta over the last dimension (biased variance, as in
 * BERT and PyTorch). The backward gives dx per row and dgamma, dbeta as sums over rows (a second
 * pass over columns, no atomics).
 *
 * @example
 * ```ts
 * const h = await layerNorm(x, gamma, beta, { eps: 1e-12, tape });
 * ```
 */
export async function layerNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  opts: LayerNormOptions = {},
): Promise<Tensor> {
  for (const t of [x, gamma, beta]) {
    if (t.dtype !== "f32") throw new TypeError(`layerNorm takes f32 tensors, got ${t.dtype}`);
  }
  const D = x.shape[x.shape.length - 1] ?? 0;
  if (x.shape.length < 1 || gamma.size !== D || beta.size !== D) {
    throw new RangeError(
      `layerNorm: gamma [${gamma.shape}] and beta [${beta.shape}] must match the last dim of ` +
        `[${x.shape}]`,
    );
  }
  const gpu = x.gpu;
  const rows = D > 0 ? x.size / D : 0;
  const block = params({ rows, D, eps: f32(opts.eps ?? 1e-12), chunks: 0 });
  const y = Tensor.zeros(gpu, x.shape);
  const mean = Tensor.zeros(gpu, [rows]);
  const rstd = Tensor.zeros(gpu, [rows]);
  const variant = opts.variant ?? (gpu.isSoftware && D <= ROW_KERNEL_MAX_D ? "rows" : "workgroup");
  if (variant === "rows" && D > ROW_KERNEL_MAX_D) {
    throw new RangeError(`layerNorm: the row kernel takes at most ${ROW_KERNEL_MAX_D} columns`);
  }
  const suffix = variant === "rows" ? "_rows" : "";
  const rowGrid = variant === "rows" ? grid1d(gpu, rows, WG) : grid1d(gpu, rows);
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, `layernorm_forward${suffix}`, CONSTANTS),
    buffers: [x, gamma, beta, y, mean, rstd],
    params: block,
    workgroups: rowGrid,
  });
  const tape = opts.tape;
  const recorded = tape?.record("layerNorm", [x, gamma, beta], y, async () => {
    const dy = tape.grad(y)!;
    const dx = tape.grad(x), dgamma = tape.grad(gamma), dbeta = tape.grad(beta);
    if (dx) {
      dispatch(gpu, {
        pipeline: await pipeline(gpu, FILE, `layernorm_backward_input${suffix}`, CONSTANTS),
        buffers: [dy, x, gamma, mean, rstd, dx],
        params: block,
        workgroups: rowGrid,
      });
    }
    if (dgamma || dbeta) {
      const chunks = Math.ceil(rows / CHUNK);
      if (chunks > 65535) throw new RangeError(`layerNorm: ${rows} rows exceed ${65535 * CHUNK}`);
      const gradParams = params({ rows, D, eps: f32(0), chunks });
      const partG = Tensor.zeros(gpu, [chunks, D]), partB = Tensor.zeros(gpu, [chunks, D]);
      dispatch(gpu, {
        pipeline: await pipeline(gpu, FILE, "layernorm_backward_params_partial", CONSTANTS),
        buffers: [dy, x, mean, rstd, partG, partB],
        params: gradParams,
        workgroups: grid1d(gpu, chunks * D, WG),
      });
      // The final pass writes both; a scratch buffer takes the one nobody wants.
      const scratch = dgamma && dbeta ? null : Tensor.zeros(gpu, [D]);
      dispatch(gpu, {
        pipeline: await pipeline(gpu, FILE, "layernorm_backward_params_final", CONSTANTS),
        buffers: [partG, partB, dgamma ?? scratch!, dbeta ?? scratch!],
        params: gradParams,
        workgroups: grid1d(gpu, D, WG),
      });
      [partG, partB].forEach((t) => t.destroy());
      scratch?.destroy();
    }
    mean.destroy();
    rstd.destroy();
  });
  if (!recorded) {
    mean.destroy();
    rstd.destroy();
  }
  return y;
}

/**
 * Cosine similarity and its backward. WGSL in `kernels/similarity.wgsl`.
 *
 * Dimension legend: X is B x D, Y is B' x D; the matrix is B x B' with
 * `C[i, j] = x_i·y_j / (max(||x_i||, eps)·max(||y_j||, eps))`; the row-wise form (B = B') is the
 * vector `c[i] = cos(x_i, y_i)`. Forward saves the row norms; backward accumulates dX and dY.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { dispatch, pipeline } from "../gpu/kernels.ts";
import { f32, type ParamBlock, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** The norm floor of {@link cosineSimilarityMatrix} by default (as `torch.cosine_similarity`). */
export const COSINE_EPS = 1e-8;

/** Options of {@link cosineSimilarityMatrix} and {@link cosineSimilarityRows}. */
export interface CosineOptions {
  /** Record the backward step here. */
  tape?: Tape;
  /** Norms below this are clamped to it. Default {@link COSINE_EPS}. */
  eps?: number;
  /**
   * The caller reads the output only through the tape: the backward step destroys the output and
   * the saved norms once it has run (for intermediates of a loss). Without a recorded step the
   * saved norms are destroyed at once either way.
   */
  releaseAfterBackward?: boolean;
}

const FILE = "similarity.wgsl";
/** Invocations per workgroup of the 1-D kernels of `similarity.wgsl` (its override `WG`). */
const WG = 64;
/** Side of the square workgroups of `cos_matrix_forward` (the WGSL override `TILE`). */
const TILE = 8;
/** The override constants of every `similarity.wgsl` pipeline. */
const CONSTANTS = { WG, TILE };

function checkOperands(x: Tensor, y: Tensor, what: string): [number, number, number] {
  if (x.shape.length !== 2 || y.shape.length !== 2) {
    throw new RangeError(`${what} takes 2-D operands, got [${x.shape}] and [${y.shape}]`);
  }
  if (x.shape[1] !== y.shape[1]) {
    throw new RangeError(`${what}: embedding sizes differ: [${x.shape}] and [${y.shape}]`);
  }
  if (x.gpu !== y.gpu) throw new Error(`${what}: operands belong to different GPUs`);
  return [x.shape[0], y.shape[0], x.shape[1]];
}

function cosParams(
  rowsX: number,
  rowsY: number,
  dim: number,
  mode: number,
  eps: number,
): ParamBlock {
  return params({ rowsX, rowsY, dim, mode, eps: f32(eps) });
}

async function norms(
  gpu: Gpu,
  x: Tensor,
  y: Tensor,
  rowsX: number,
  rowsY: number,
  dim: number,
  eps: number,
): Promise<[Tensor, Tensor]> {
  const nx = Tensor.zeros(gpu, [rowsX], "f32", "cos norms x");
  const ny = Tensor.zeros(gpu, [rowsY], "f32", "cos norms y");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "cos_norms", CONSTANTS),
    buffers: [x, y, nx, ny],
    params: cosParams(rowsX, rowsY, dim, 0, eps),
    workgroups: [Math.ceil((rowsX + rowsY) / WG)],
  });
  return [nx, ny];
}

/**
 * The cosine similarity matrix `C[i, j] = cos(x_i, y_j)` of X [B, D] and Y [B', D], shape [B, B'];
 * records dX, dY (accumulated) on the tape.
 *
 * @example
 * ```ts
 * const scores = await cosineSimilarityMatrix(queries, documents, { tape });
 * ```
 */
export async function cosineSimilarityMatrix(
  x: Tensor,
  y: Tensor,
  opts: CosineOptions = {},
): Promise<Tensor> {
  const gpu = x.gpu;
  const [rowsX, rowsY, dim] = checkOperands(x, y, "cosineSimilarityMatrix");
  const eps = opts.eps ?? COSINE_EPS;
  const [nx, ny] = await norms(gpu, x, y, rowsX, rowsY, dim, eps);
  const c = Tensor.zeros(gpu, [rowsX, rowsY], "f32", "cos matrix");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "cos_matrix_forward", CONSTANTS),
    buffers: [x, y, nx, ny, c],
    params: cosParams(rowsX, rowsY, dim, 0, eps),
    workgroups: [Math.ceil(rowsY / TILE), Math.ceil(rowsX / TILE)],
  });
  const tape = opts.tape;
  const recorded = tape?.record("cosineSimilarityMatrix", [x, y], c, async () => {
    const dc = tape.grad(c)!;
    const backward = await pipeline(gpu, FILE, "cos_matrix_backward", CONSTANTS);
    for (const [mode, target, rows] of [[0, x, rowsX], [1, y, rowsY]] as const) {
      const d = tape.grad(target);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: backward,
        buffers: [x, y, nx, ny, c, dc, d],
        params: cosParams(rowsX, rowsY, dim, mode, eps),
        workgroups: [Math.ceil(dim / WG), rows],
      });
    }
    release(opts.releaseAfterBackward ? [nx, ny, c] : [nx, ny]);
  }) ?? false;
  if (!recorded) release([nx, ny]);
  return c;
}

/**
 * The row-wise cosine `c[i] = cos(x_i, y_i)` of X and Y, both [B, D], shape [B]; records dX, dY
 * (accumulated) on the tape.
 *
 * @example
 * ```ts
 * const positive = await cosineSimilarityRows(queries, positives, { tape });
 * ```
 */
export async function cosineSimilarityRows(
  x: Tensor,
  y: Tensor,
  opts: CosineOptions = {},
): Promise<Tensor> {
  const gpu = x.gpu;
  const [rows, rowsY, dim] = checkOperands(x, y, "cosineSimilarityRows");
  if (rows !== rowsY) {
    throw new RangeError(`cosineSimilarityRows: row counts differ: [${x.shape}] and [${y.shape}]`);
  }
  const eps = opts.eps ?? COSINE_EPS;
  const [nx, ny] = await norms(gpu, x, y, rows, rows, dim, eps);
  const c = Tensor.zeros(gpu, [rows], "f32", "cos rows");
  dispatch(gpu, {
    pipeline: await pipeline(gpu, FILE, "cos_rows_forward", CONSTANTS),
    buffers: [x, y, nx, ny, c],
    params: cosParams(rows, rows, dim, 0, eps),
    workgroups: [Math.ceil(rows / WG)],
  });
  const tape = opts.tape;
  const recorded = tape?.record("cosineSimilarityRows", [x, y], c, async () => {
    const dc = tape.grad(c)!;
    const backward = await pipeline(gpu, FILE, "cos_rows_backward", CONSTANTS);
    for (const [mode, target] of [[0, x], [1, y]] as const) {
      const d = tape.grad(target);
      if (!d) continue;
      dispatch(gpu, {
        pipeline: backward,
        buffers: [x, y, nx, ny, c, dc, d],
        params: cosParams(rows, rows, dim, mode, eps),
        workgroups: [Math.ceil(dim / WG), rows],
      });
    }
    release(opts.releaseAfterBackward ? [nx, ny, c] : [nx, ny]);
  }) ?? false;
  if (!recorded) release([nx, ny]);
  return c;
}

// Tensor.destroy flushes first, so recorded work that reads these buffers is submitted before
// they go; WebGPU keeps a destroyed buffer alive for work already submitted.
function release(tensors: Tensor[]): void {
  for (const t of tensors) t.destroy();
}

/**
 * Layout ops: swapping two middle dimensions (splitting and merging attention heads) and taking
 * one row of each sequence (CLS pooling). WGSL in `kernels/layout.wgsl`.
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Bindable, dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of the kernels in `layout.wgsl` (its override `WG`). */
const WG = 64;

/** Options of the layout ops. */
export interface LayoutOptions {
  /** Record the backward step here. */
  tape?: Tape;
}

async function launch(
  gpu: Gpu,
  entry: string,
  buffers: Bindable[],
  dims: [number, number, number, number],
  n: number,
  constants: Record<string, number> = {},
): Promise<void> {
  const p = await pipeline(gpu, "layout.wgsl", entry, { WG, ...constants });
  const [A, B, C, D] = dims;
  dispatch(gpu, {
    pipeline: p,
    buffers,
    params: params({ A, B, C, D }),
    workgroups: grid1d(gpu, n, WG),
  });
}

/**
 * Swaps dimensions 1 and 2 of a 4-D tensor: x [A, B, C, D] -> [A, C, B, D].
 *
 * @example
 * ```ts
 * // [batch, seq, heads, dim] -> [batch, heads, seq, dim]
 * const heads = await swap12(q.reshape([batch, seq, nHeads, headDim]), { tape });
 * ```
 */
export async function swap12(x: Tensor, opts: LayoutOptions = {}): Promise<Tensor> {
  if (x.shape.length !== 4) throw new RangeError(`swap12 takes a 4-D tensor, got [${x.shape}]`);
  const [A, B, C, D] = x.shape;
  const gpu = x.gpu;
  const y = Tensor.zeros(gpu, [A, C, B, D]);
  await launch(gpu, "swap12", [x, y], [A, B, C, D], y.size);
  const tape = opts.tape;
  tape?.record("swap12", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) {
      await launch(gpu, "swap12", [tape.grad(y)!, dx], [A, C, B, D], y.size, { ACCUMULATE: 1 });
    }
  });
  return y;
}

/**
 * Takes row `row` of each sequence: x [A, R, D] -> [A, D] (CLS pooling with row 0).
 *
 * @example
 * ```ts
 * const cls = await takeRow(hidden, 0, { tape });
 * ```
 */
export async function takeRow(x: Tensor, row: number, opts: LayoutOptions = {}): Promise<Tensor> {
  if (x.shape.length !== 3) throw new RangeError(`takeRow takes a 3-D tensor, got [${x.shape}]`);
  const [A, R, D] = x.shape;
  if (!(row >= 0 && row < R)) throw new RangeError(`takeRow: row ${row} outside [0, ${R})`);
  const gpu = x.gpu;
  const y = Tensor.zeros(gpu, [A, D]);
  await launch(gpu, "take_row_forward", [x, y], [A, R, row, D], y.size);
  const tape = opts.tape;
  tape?.record("takeRow", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) await launch(gpu, "take_row_backward", [tape.grad(y)!, dx], [A, R, row, D], y.size);
  });
  return y;
}

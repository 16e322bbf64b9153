/**
 * Elementwise ops: add, bias add, scale by a constant, multiply; each records its hand-written
 * backward on the tape. WGSL in `kernels/elementwise.wgsl`.
 *
 * Dimension legend: n elements; bias add views x as rows x cols (cols = the last dimension) and
 * the bias as [cols].
 *
 * @module
 */
import type { Tape } from "../autodiff/tape.ts";
import type { Gpu } from "../gpu/device.ts";
import { type Bindable, dispatch, grid1d, pipeline } from "../gpu/kernels.ts";
import { f32, params } from "../gpu/params.ts";
import { Tensor } from "../gpu/tensor.ts";

/** Invocations per workgroup of every kernel in `elementwise.wgsl` (its override `WG`). */
const WG = 64;
/** Rows per partial sum in `column_sum_partial` (the WGSL override `CHUNK`). */
const CHUNK = 256;
const FILE = "elementwise.wgsl";

/** Options shared by the elementwise ops. */
export interface ElementwiseOptions {
  /** Record the backward step here. */
  tape?: Tape;
}

interface Launch {
  entry: string;
  buffers: Bindable[];
  /** Flat invocation count. */
  count: number;
  n: number;
  cols?: number;
  alpha?: number;
  rows?: number;
}

async function launch(gpu: Gpu, l: Launch): Promise<void> {
  const p = await pipeline(gpu, FILE, l.entry, { WG, CHUNK });
  dispatch(gpu, {
    pipeline: p,
    buffers: l.buffers,
    params: params({ n: l.n, cols: l.cols ?? 0, alpha: f32(l.alpha ?? 1), rows: l.rows ?? 0 }),
    workgroups: grid1d(gpu, l.count, WG),
  });
}

function assertF32(name: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== "f32") throw new TypeError(`${name} takes f32 tensors, got ${t.dtype}`);
  }
}

function assertSameShape(name: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`${name}: shapes differ, [${a.shape}] and [${b.shape}]`);
  }
}

/**
 * Records `d += alpha * g` (both of n elements), the accumulation most backward steps end with.
 * Exported for other ops' backward steps.
 */
export async function axpyInto(gpu: Gpu, g: Tensor, d: Tensor, alpha = 1): Promise<void> {
  if (g.size !== d.size) throw new RangeError(`axpy: sizes differ, ${g.size} and ${d.size}`);
  await launch(gpu, { entry: "axpy", buffers: [g, d], count: d.size, n: d.size, alpha });
}

/**
 * Records `d[c] += Σ_r g[r, c]` for g viewed as [rows, cols] with cols = d.size: partial sums
 * over chunks of 256 rows, then one pass over the chunks (no atomics; every shader loop stays
 * under llvmpipe's 65535-iteration cap). Exported for other ops' backward steps.
 */
export async function columnSumInto(gpu: Gpu, g: Tensor, d: Tensor): Promise<void> {
  const cols = d.size;
  if (cols === 0 || g.size === 0) return;
  if (g.size % cols !== 0) {
    throw new RangeError(`columnSum: [${g.shape}] does not split into rows of ${cols}`);
  }
  const rows = g.size / cols;
  const chunks = Math.ceil(rows / CHUNK);
  if (chunks > 65535) throw new RangeError(`columnSum: ${rows} rows exceed ${65535 * CHUNK}`);
  const part = Tensor.zeros(gpu, [chunks, cols]);
  await launch(gpu, {
    entry: "column_sum_partial",
    buffers: [g, part],
    count: chunks * cols,
    n: chunks * cols,
    cols,
    rows,
  });
  await launch(gpu, {
    entry: "column_sum_accumulate",
    buffers: [part, d],
    count: cols,
    n: cols,
    cols,
    rows: chunks,
  });
  part.destroy();
}

/**
 * y = a + b for tensors of the same shape; backward da += dy, db += dy.
 *
 * @example
 * ```ts
 * const y = await add(a, b, { tape });
 * ```
 */
export async function add(a: Tensor, b: Tensor, opts: ElementwiseOptions = {}): Promise<Tensor> {
  assertF32("add", a, b);
  assertSameShape("add", a, b);
  const gpu = a.gpu;
  const y = Tensor.zeros(gpu, a.shape);
  await launch(gpu, { entry: "add_forward", buffers: [a, b, y], count: y.size, n: y.size });
  const tape = opts.tape;
  tape?.record("add", [a, b], y, async () => {
    const dy = tape.grad(y)!;
    const da = tape.grad(a), db = tape.grad(b);
    if (da) await axpyInto(gpu, dy, da);
    if (db) await axpyInto(gpu, dy, db);
  });
  return y;
}

/**
 * y[r, c] = x[r, c] + b[c], with b as long as x's last dimension; backward dx += dy and
 * db[c] += Σ_r dy[r, c] (a column-sum pass, no atomics).
 *
 * @example
 * ```ts
 * const h = await biasAdd(await matmul(x, w, { tape }), bias, { tape });
 * ```
 */
export async function biasAdd(
  x: Tensor,
  b: Tensor,
  opts: ElementwiseOptions = {},
): Promise<Tensor> {
  assertF32("biasAdd", x, b);
  const cols = x.shape[x.shape.length - 1];
  if (x.shape.length < 1 || b.size !== cols) {
    throw new RangeError(`biasAdd: bias [${b.shape}] does not match the last dim of [${x.shape}]`);
  }
  const gpu = x.gpu;
  const y = Tensor.zeros(gpu, x.shape);
  await launch(gpu, {
    entry: "bias_add_forward",
    buffers: [x, b, y],
    count: y.size,
    n: y.size,
    cols,
  });
  const tape = opts.tape;
  tape?.record("biasAdd", [x, b], y, async () => {
    const dy = tape.grad(y)!;
    const dx = tape.grad(x), db = tape.grad(b);
    if (dx) await axpyInto(gpu, dy, dx);
    if (db) await columnSumInto(gpu, dy, db);
  });
  return y;
}

/**
 * y = alpha · x for a constant alpha; backward dx += alpha · dy.
 *
 * @example
 * ```ts
 * const scaled = await scale(scores, 1 / Math.sqrt(headDim), { tape });
 * ```
 */
export async function scale(
  x: Tensor,
  alpha: number,
  opts: ElementwiseOptions = {},
): Promise<Tensor> {
  assertF32("scale", x);
  const gpu = x.gpu;
  const y = Tensor.zeros(gpu, x.shape);
  await launch(gpu, { entry: "scale_forward", buffers: [x, y], count: y.size, n: y.size, alpha });
  const tape = opts.tape;
  tape?.record("scale", [x], y, async () => {
    const dx = tape.grad(x);
    if (dx) await axpyInto(gpu, tape.grad(y)!, dx, alpha);
  });
  return y;
}

/**
 * y = a ⊙ b (elementwise product, same shape; for masks and gates); backward da += dy ⊙ b,
 * db += dy ⊙ a.
 *
 * @example
 * ```ts
 * const gated = await mul(h, gate, { tape });
 * ```
 */
export async function mul(a: Tensor, b: Tensor, opts: ElementwiseOptions = {}): Promise<Tensor> {
  assertF32("mul", a, b);
  assertSameShape("mul", a, b);
  const gpu = a.gpu;
  const y = Tensor.zeros(gpu, a.shape);
  await launch(gpu, { entry: "mul_forward", buffers: [a, b, y], count: y.size, n: y.size });
  const tape = opts.tape;
  tape?.record("mul", [a, b], y, async () => {
    const dy = tape.grad(y)!;
    const da = tape.grad(a), db = tape.grad(b);
    const n = y.size;
    if (da) await launch(gpu, { entry: "mul_accumulate", buffers: [dy, b, da], count: n, n });
    if (db) await launch(gpu, { entry: "mul_accumulate", buffers: [dy, a, db], count: n, n });
  });
  return y;
}

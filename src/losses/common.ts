/**
 * Shared plumbing of the losses: validating host embeddings, running a loss and its backward on
 * the GPU through the tape, and releasing a loss's intermediates.
 *
 * @module
 */
import { Tape } from "../autodiff/tape.ts";
import { getGpu, type Gpu } from "../gpu/device.ts";
import { Tensor } from "../gpu/tensor.ts";

/**
 * The override constants of the loss kernels (`margin_loss.wgsl`, `margin_mse.wgsl`,
 * `infonce.wgsl`): `WG` invocations in the forward's single workgroup, which reduces the
 * per-example terms with a tree, and `GRAD_WG` per workgroup of the backward kernels (launched
 * as ceil(items / GRAD_WG) workgroups).
 */
export const LOSS_KERNEL_CONSTANTS = { WG: 256, GRAD_WG: 64 } as const;

/** A loss value and its gradients w.r.t. the query, positive and negative embeddings. */
export interface LossResult {
  /** The loss. */
  loss: number;
  /** d loss / d Q, the shape of Q. */
  dq: number[][];
  /** d loss / d P, the shape of P. */
  dp: number[][];
  /** d loss / d N, the shape of N (empty rows when there were no negatives). */
  dn: number[][];
}

/** Checks that `rows` is a non-empty rectangular matrix of finite numbers; returns its shape. */
export function matrixShape(rows: readonly (readonly number[])[], name: string): [number, number] {
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new RangeError(`${name} must be a non-empty array of embedding rows`);
  }
  const dim = rows[0]?.length ?? 0;
  if (dim === 0) throw new RangeError(`${name}[0] is empty: embeddings need at least one value`);
  rows.forEach((row, i) => {
    if (!row || row.length !== dim) {
      throw new RangeError(`${name}[${i}] has ${row?.length ?? 0} values, ${name}[0] has ${dim}`);
    }
    for (let k = 0; k < dim; k++) {
      if (!Number.isFinite(row[k])) {
        throw new RangeError(`${name}[${i}][${k}] is ${row[k]}, not a finite number`);
      }
    }
  });
  return [rows.length, dim];
}

/** Checks that Q, P and N (when given) are B x D matrices of one shape; returns [B, D]. */
export function tripleShape(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[] | null,
): [number, number] {
  const sq = matrixShape(q, "q");
  const others: [string, readonly (readonly number[])[]][] = n ? [["p", p], ["n", n]] : [["p", p]];
  for (const [name, m] of others) {
    const s = matrixShape(m, name);
    if (s[0] !== sq[0] || s[1] !== sq[1]) {
      throw new RangeError(
        `${name} is ${s[0]} x ${s[1]}, q is ${sq[0]} x ${sq[1]}: they must match`,
      );
    }
  }
  return sq;
}

/** Uploads a host matrix as an f32 tensor. */
export function uploadMatrix(gpu: Gpu, rows: readonly (readonly number[])[]): Tensor {
  const [b, d] = [rows.length, rows[0].length];
  const flat = new Float32Array(b * d);
  rows.forEach((row, i) => flat.set(row, i * d));
  return Tensor.from(gpu, flat, [b, d]);
}

/** Splits row-major data into `rows` arrays of `cols` numbers. */
export function toRows(data: ArrayLike<number>, rows: number, cols: number): number[][] {
  return Array.from(
    { length: rows },
    (_, i) => Array.from({ length: cols }, (_, k) => data[i * cols + k]),
  );
}

/**
 * Runs a loss over host embeddings on the GPU: uploads Q, P, N, records the loss on a fresh tape,
 * runs its backward and reads the loss and the gradients back.
 */
export async function runLoss(
  q: readonly (readonly number[])[],
  p: readonly (readonly number[])[],
  n: readonly (readonly number[])[] | null,
  forward: (tape: Tape, q: Tensor, p: Tensor, n: Tensor | null) => Promise<Tensor>,
): Promise<LossResult> {
  const [b, d] = tripleShape(q, p, n);
  const gpu = await getGpu();
  const tq = uploadMatrix(gpu, q);
  const tp = uploadMatrix(gpu, p);
  const tn = n ? uploadMatrix(gpu, n) : null;
  const tape = new Tape();
  tape.watch(tq, tp, ...(tn ? [tn] : []));
  try {
    const loss = await forward(tape, tq, tp, tn);
    const value = (await loss.read())[0];
    await tape.backward(loss, [1]);
    const read = async (t: Tensor | null) =>
      t ? toRows(await tape.grad(t)!.read(), b, d) : [] as number[][];
    const result = { loss: value, dq: await read(tq), dp: await read(tp), dn: await read(tn) };
    loss.destroy();
    return result;
  } finally {
    tape.dispose();
    for (const t of [tq, tp, tn]) t?.destroy();
  }
}

/**
 * The intermediates of a loss that its own code must destroy: those without a backward step on
 * the tape (a detached target; all of them without a tape). The others were made with
 * `releaseAfterBackward`, so their own backward step destroys them.
 */
export function notOnTape(tape: Tape | undefined, tensors: Tensor[]): Tensor[] {
  return tensors.filter((t) => !tape?.needsGrad(t));
}

/**
 * Records a loss's backward step, then arranges for `owned` (from {@link notOnTape}) to be
 * destroyed after that step has run, or at once when nothing was recorded.
 */
export function recordLoss(
  tape: Tape | undefined,
  name: string,
  inputs: Tensor[],
  loss: Tensor,
  owned: Tensor[],
  step: () => Promise<void>,
): void {
  const recorded = tape?.record(name, inputs, loss, async () => {
    await step();
    for (const t of owned) t.destroy();
  }) ?? false;
  if (!recorded) { for (const t of owned) t.destroy(); }
}

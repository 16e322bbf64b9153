import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { softmax } from "../src/ops/softmax.ts";
import { checkOp, gpu, randn } from "./helpers.ts";

/** float64 masked scaled softmax over the last dim; mask [batch, K] or none. */
function softmaxRef(
  x: Float64Array,
  K: number,
  batch: number,
  scale: number,
  mask?: ArrayLike<number>,
): Float64Array {
  const y = new Float64Array(x.length);
  const rows = x.length / K, perBatch = rows / batch;
  for (let r = 0; r < rows; r++) {
    const b = Math.floor(r / perBatch);
    const keep = (k: number) => !mask || mask[b * K + k] !== 0;
    let m = -Infinity;
    for (let k = 0; k < K; k++) if (keep(k)) m = Math.max(m, scale * x[r * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) if (keep(k)) s += Math.exp(scale * x[r * K + k] - m);
    for (let k = 0; k < K; k++) {
      y[r * K + k] = keep(k) ? Math.exp(scale * x[r * K + k] - m) / s : 0;
    }
  }
  return y;
}

/** A [batch, K] 0/1 mask: element 0 keeps a ragged prefix, the last is fully masked. */
function makeMask(batch: number, K: number, seed: number): Float32Array {
  const m = new Float32Array(batch * K);
  const u = randn(batch, seed);
  for (let b = 0; b < batch; b++) {
    const len = b === batch - 1 && batch > 1 ? 0 : 1 + Math.floor(Math.abs(u[b]) * K) % K;
    for (let k = 0; k < len; k++) m[b * K + k] = 1;
  }
  return m;
}

// Probabilities are in [0, 1]: f32 exp (WGSL allows 3 + 2|x| ulps) and one division give
// errors of a few 1e-7. Gradients (checkOp default 1e-4/1e-3) involve O(1) sums of K terms.
const FWD_TOL = { atol: 2e-6, rtol: 1e-5 };

// Both kernels: one invocation per row (no barriers) and one workgroup per row.
for (const variant of ["rows", "workgroup"] as const) {
  Deno.test(`masked scaled softmax matches float64 and finite differences (${variant} kernel)`, async () => {
    // [batch, heads, q, k]: K ragged below, around and above the 64-wide workgroup.
    for (const shape of [[1, 1, 1, 1], [2, 3, 5, 7], [3, 2, 4, 64], [3, 1, 3, 130]]) {
      const [batch, , , K] = shape;
      const mask = makeMask(batch, K, K);
      const scale = 1 / Math.sqrt(8);
      await checkOp({
        name: `softmax [${shape}] masked`,
        inputs: [{ shape, data: randn(shape.reduce((a, b) => a * b), 3, 3) }, {
          shape: [batch, K],
          data: mask,
          grad: false,
        }],
        forward: (tape, x, m) => softmax(x, { mask: m, scale, tape, variant }),
        reference: (x) => softmaxRef(x, K, batch, scale, mask),
        forwardTol: FWD_TOL,
      });
    }
  });

  Deno.test(`softmax without a mask, and with an i32 mask, matches float64 (${variant} kernel)`, async () => {
    await checkOp({
      name: "softmax [4, 9, 77] no mask",
      inputs: [{ shape: [4, 9, 77] }],
      forward: (tape, x) => softmax(x, { tape, variant }),
      reference: (x) => softmaxRef(x, 77, 1, 1),
      forwardTol: FWD_TOL,
    });
    const mask = makeMask(3, 10, 4);
    await checkOp({
      name: "softmax [3, 6, 10] i32 mask",
      inputs: [{ shape: [3, 6, 10] }, { shape: [3, 10], data: mask, dtype: "i32" }],
      forward: (tape, x, m) => softmax(x, { mask: m, scale: 2, tape, variant }),
      reference: (x) => softmaxRef(x, 10, 3, 2, mask),
      forwardTol: FWD_TOL,
    });
  });

  Deno.test(`softmax gives zeros, not NaN, for fully masked rows, even with huge scores (${variant} kernel)`, async () => {
    const g = await gpu();
    const [batch, rows, K] = [2, 3, 5];
    const x = Tensor.from(g, randn(batch * rows * K, 8, 1e30), [batch, rows, K]);
    const mask = Tensor.from(g, [1, 1, 0, 1, 0, 0, 0, 0, 0, 0], [batch, K]);
    const tape = new Tape();
    tape.watch(x);
    const y = await softmax(x, { mask, tape, variant });
    const probs = Float64Array.from(await y.read());
    await tape.backward(y, randn(y.size, 9));
    const dx = Float64Array.from(await tape.grad(x)!.read());
    for (let r = 0; r < batch * rows; r++) {
      const row = probs.slice(r * K, (r + 1) * K);
      const total = row.reduce((a, b) => a + b, 0);
      const expected = r < rows ? 1 : 0;
      if (Math.abs(total - expected) > 1e-6 || row.some((v) => !Number.isFinite(v))) {
        throw new Error(`row ${r}: probabilities ${row} should sum to ${expected}`);
      }
      if (r < rows && (row[2] !== 0 || row[4] !== 0)) throw new Error(`row ${r}: masked key kept`);
    }
    if (dx.some((v, i) => !Number.isFinite(v) || (i >= rows * K && v !== 0))) {
      throw new Error(`dx has NaN or a gradient for a fully masked row: ${dx}`);
    }
    tape.dispose();
    [x, mask, y].forEach((t) => t.destroy());
  });

  Deno.test(`softmax handles more rows than one grid dimension holds (${variant} kernel)`, async () => {
    // 2 · 33000 rows: 66000 workgroups (one per row), folded into a 2-D grid.
    const [batch, q, K] = [2, 33000, 3];
    const mask = Float32Array.from([1, 0, 1, 1, 1, 0]);
    await checkOp({
      name: "softmax [2, 33000, 3]",
      inputs: [{ shape: [batch, q, K] }, { shape: [batch, K], data: mask, grad: false }],
      forward: (tape, x, m) => softmax(x, { mask: m, tape, variant }),
      reference: (x) => softmaxRef(x, K, batch, 1, mask),
      forwardTol: FWD_TOL,
      fdSamples: 8,
    });
  });
}

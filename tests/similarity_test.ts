import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { cosineSimilarityMatrix, cosineSimilarityRows } from "../src/ops/similarity.ts";
import { checkOp, gpu, randn } from "./helpers.ts";

/** float64 cosine of row i of X with row j of Y (norms floored at 1e-8), written directly. */
function cosRef(x: Float64Array, y: Float64Array, d: number, i: number, j: number): number {
  let dot = 0, xx = 0, yy = 0;
  for (let k = 0; k < d; k++) {
    dot += x[i * d + k] * y[j * d + k];
    xx += x[i * d + k] ** 2;
    yy += y[j * d + k] ** 2;
  }
  return dot / (Math.max(Math.sqrt(xx), 1e-8) * Math.max(Math.sqrt(yy), 1e-8));
}

// Ragged shapes (B != B', D not a multiple of any workgroup size), a single row, and B = 16.
const MATRIX_SHAPES: [number, number, number][] = [[1, 1, 1], [5, 3, 7], [3, 9, 33], [16, 16, 33], [
  4,
  2,
  70,
]];

// Cosines lie in [-1, 1]; an f32 dot product over D <= 70 terms errs by ~1e-7·sqrt(D), so 1e-6
// absolute bounds the forward. The gradient of L = Σ w·C w.r.t. one element sums up to 16 terms
// of size ~|w|/||x|| in f32: relative error ~1e-6, checked at rtol 1e-4 with atol 1e-5 for
// elements near zero.
const FORWARD_TOL = { atol: 1e-6, rtol: 1e-5 };
const GRAD_TOL = { atol: 1e-5, rtol: 1e-4 };

Deno.test("cosine similarity matrix matches float64 and finite differences (dX, dY)", async () => {
  for (const [bx, by, d] of MATRIX_SHAPES) {
    await checkOp({
      name: `cos matrix ${bx}x${by}, D=${d}`,
      inputs: [{ shape: [bx, d] }, { shape: [by, d] }],
      forward: (tape, x, y) => cosineSimilarityMatrix(x, y, { tape }),
      reference: (x, y) => {
        const out = new Float64Array(bx * by);
        for (let i = 0; i < bx; i++) {
          for (let j = 0; j < by; j++) out[i * by + j] = cosRef(x, y, d, i, j);
        }
        return out;
      },
      forwardTol: FORWARD_TOL,
      gradTol: GRAD_TOL,
      seed: bx * 100 + by + d,
    });
  }
});

Deno.test("row-wise cosine matches float64 and finite differences (dX, dY)", async () => {
  for (const [b, d] of [[1, 1], [5, 7], [16, 33], [3, 70]]) {
    await checkOp({
      name: `cos rows ${b}, D=${d}`,
      inputs: [{ shape: [b, d] }, { shape: [b, d] }],
      forward: (tape, x, y) => cosineSimilarityRows(x, y, { tape }),
      reference: (x, y) => Float64Array.from({ length: b }, (_, i) => cosRef(x, y, d, i, i)),
      forwardTol: FORWARD_TOL,
      gradTol: GRAD_TOL,
      seed: b + d,
    });
  }
});

Deno.test("cosine of the same tensor on both sides accumulates both gradient contributions", async () => {
  // cos(X, X): X receives dX from both operands; the reference differentiates the whole function.
  const [b, d] = [6, 9];
  await checkOp({
    name: "cos matrix X with itself",
    inputs: [{ shape: [b, d] }],
    forward: (tape, x) => cosineSimilarityMatrix(x, x, { tape }),
    reference: (x) => {
      const out = new Float64Array(b * b);
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < b; j++) out[i * b + j] = cosRef(x, x, d, i, j);
      }
      return out;
    },
    forwardTol: FORWARD_TOL,
    gradTol: GRAD_TOL,
  });
});

Deno.test("cosine with a zero row is 0 with finite gradients (norm floored at eps)", async () => {
  const g = await gpu();
  const [b, d] = [3, 5];
  const xs = randn(b * d, 5);
  xs.fill(0, d, 2 * d); // row 1 is zero
  const ys = randn(b * d, 6);
  const x = Tensor.from(g, xs, [b, d]), y = Tensor.from(g, ys, [b, d]);
  // One tape per op: a tape runs its steps once.
  const tapes = [new Tape(), new Tape()];
  tapes.forEach((t) => t.watch(x, y));
  const m = await cosineSimilarityMatrix(x, y, { tape: tapes[0] });
  const r = await cosineSimilarityRows(x, y, { tape: tapes[1] });
  const cm = await m.read(), cr = await r.read();
  for (let j = 0; j < b; j++) {
    if (cm[b + j] !== 0) throw new Error(`cos(0, y_${j}) = ${cm[b + j]}, expected 0`);
  }
  if (cr[1] !== 0) throw new Error(`row-wise cos(0, y_1) = ${cr[1]}, expected 0`);
  await tapes[0].backward(m);
  await tapes[1].backward(r);
  for (const tape of tapes) {
    for (const t of [x, y]) {
      const grad = await tape.grad(t)!.read();
      if (!grad.every(Number.isFinite)) throw new Error("non-finite gradient next to a zero row");
      if (!grad.some((v) => v !== 0)) throw new Error("gradient is all zeros");
    }
    tape.dispose();
  }
  for (const t of [x, y, m, r]) t.destroy();
});

Deno.test("cosine ops refuse mismatched shapes", async () => {
  const g = await gpu();
  const a = Tensor.zeros(g, [3, 4]), b = Tensor.zeros(g, [3, 5]), c = Tensor.zeros(g, [2, 4]);
  for (
    const [run, pattern] of [
      [() => cosineSimilarityMatrix(a, b), /embedding sizes differ/],
      [() => cosineSimilarityRows(a, c), /row counts differ/],
    ] as const
  ) {
    let message = "";
    try {
      await run();
    } catch (e) {
      message = (e as Error).message;
    }
    if (!pattern.test(message)) {
      throw new Error(`expected ${pattern}, got ${JSON.stringify(message)}`);
    }
  }
  for (const t of [a, b, c]) t.destroy();
});

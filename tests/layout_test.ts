import { swap12, takeRow } from "../src/ops/layout.ts";
import { checkOp } from "./helpers.ts";

// Pure data movement: forward and gradients must be exact up to f32 rounding of the inputs
// (the float64 reference sees the same f32 values), so tolerances are tight.
const EXACT = { atol: 1e-7, rtol: 1e-6 };
// Finite differences of a linear function in float64: error ~1e-10.
const FD = { atol: 1e-6, rtol: 1e-5 };

Deno.test("swap12 moves [A, B, C, D] to [A, C, B, D], gradient swaps back", async () => {
  for (const [A, B, C, D] of [[1, 1, 1, 1], [2, 3, 5, 7], [3, 17, 4, 9]]) {
    await checkOp({
      name: `swap12 ${[A, B, C, D]}`,
      inputs: [{ shape: [A, B, C, D] }],
      forward: (tape, x) => swap12(x, { tape }),
      reference: (x) => {
        const y = new Float64Array(x.length);
        for (let a = 0; a < A; a++) {
          for (let b = 0; b < B; b++) {
            for (let c = 0; c < C; c++) {
              for (let d = 0; d < D; d++) {
                y[((a * C + c) * B + b) * D + d] = x[((a * B + b) * C + c) * D + d];
              }
            }
          }
        }
        return y;
      },
      forwardTol: EXACT,
      gradTol: FD,
    });
  }
});

Deno.test("takeRow picks one row per sequence, gradient lands on that row only", async () => {
  for (const [A, R, D, row] of [[1, 1, 1, 0], [3, 5, 7, 0], [4, 9, 33, 6]]) {
    await checkOp({
      name: `takeRow ${[A, R, D]} row ${row}`,
      inputs: [{ shape: [A, R, D] }],
      forward: (tape, x) => takeRow(x, row, { tape }),
      reference: (x) => {
        const y = new Float64Array(A * D);
        for (let a = 0; a < A; a++) {
          for (let d = 0; d < D; d++) y[a * D + d] = x[(a * R + row) * D + d];
        }
        return y;
      },
      forwardTol: EXACT,
      gradTol: FD,
      fdSamples: 400,
    });
  }
});

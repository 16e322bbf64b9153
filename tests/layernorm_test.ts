import { layerNorm } from "../src/ops/layernorm.ts";
import { checkOp, randn } from "./helpers.ts";

/** float64 LayerNorm over the last dimension (biased variance). */
function layerNormRef(
  x: Float64Array,
  gamma: Float64Array,
  beta: Float64Array,
  D: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let mean = 0;
    for (let c = 0; c < D; c++) mean += x[r * D + c];
    mean /= D;
    let v = 0;
    for (let c = 0; c < D; c++) v += (x[r * D + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / D + eps);
    for (let c = 0; c < D; c++) {
      y[r * D + c] = (x[r * D + c] - mean) * rstd * gamma[c] + beta[c];
    }
  }
  return y;
}

// Ragged widths (below, around and above the 64-wide workgroup), rows beyond one workgroup, a
// 3-D input. Outputs are O(1) (normalised, times unit-normal gamma): the f32 sums over D give
// ~sqrt(D)·2^-24 relative error, so atol 2e-5 (a few ulps of values up to ~5). Gradients: dx
// combines three O(1) terms times rstd, dgamma sums up to 150 rows; checkOp's default 1e-4/1e-3
// is ~100x the expected f32 error and far below any indexing or formula error.
const SHAPES: number[][] = [[1, 2], [3, 5], [7, 64], [5, 97], [150, 33], [2, 3, 130]];

// Both row kernels: one invocation per row (no barriers) and one workgroup per row.
for (const variant of ["rows", "workgroup"] as const) {
  Deno.test(`layerNorm matches float64 and finite differences for x, gamma and beta (${variant} kernel)`, async () => {
    for (const shape of SHAPES) {
      const D = shape[shape.length - 1];
      await checkOp({
        name: `layerNorm [${shape}]`,
        inputs: [{ shape }, { shape: [D] }, { shape: [D] }],
        forward: (tape, x, g, b) => layerNorm(x, g, b, { eps: 1e-5, tape, variant }),
        reference: (x, g, b) => layerNormRef(x, g, b, D, 1e-5),
        forwardTol: { atol: 2e-5, rtol: 1e-5 },
      });
    }
  });

  Deno.test(`layerNorm is accurate for rows with a large mean (two-pass variance) (${variant} kernel)`, async () => {
    const [rows, D] = [4, 40];
    const x = randn(rows * D, 9).map((v, i) => 1000 + v + (i % 7));
    await checkOp({
      name: "layerNorm mean 1000",
      inputs: [{ shape: [rows, D], data: x }, { shape: [D] }, { shape: [D] }],
      forward: (tape, x, g, b) => layerNorm(x, g, b, { eps: 1e-12, tape, variant }),
      reference: (x, g, b) => layerNormRef(x, g, b, D, 1e-12),
      // x - mean keeps ~2^-24·1000 ≈ 6e-5 absolute error per element, about 3e-5 relative to the
      // spread (std ≈ 2.2) of the normalised values: 2e-4 absolute.
      forwardTol: { atol: 2e-4, rtol: 1e-4 },
      gradTol: { atol: 1e-3, rtol: 1e-3 },
    });
  });

  Deno.test(`layerNorm handles more rows than one grid dimension holds (${variant} kernel)`, async () => {
    // 65600 rows of width 3: more workgroups (one per row) than 65535, so the grid folds to 2-D.
    const [rows, D] = [65600, 3];
    await checkOp({
      name: "layerNorm 65600 rows",
      inputs: [{ shape: [rows, D] }, { shape: [D] }, { shape: [D] }],
      forward: (tape, x, g, b) => layerNorm(x, g, b, { eps: 1e-5, tape, variant }),
      reference: (x, g, b) => layerNormRef(x, g, b, D, 1e-5),
      forwardTol: { atol: 2e-5, rtol: 1e-5 },
      // dgamma and dbeta sum 65600 rows of O(1) terms (magnitude ~250) in chunks of 256: f32
      // error ~ (256 + 257)·2^-24·|terms| ≈ 1e-4 at worst; a 65535-row truncation (llvmpipe's
      // loop cap) or a lost chunk is off by > 1.
      gradTol: { atol: 2e-3, rtol: 1e-5 },
      fdSamples: 6,
    });
  });
}

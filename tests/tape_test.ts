import { add, biasAdd, mul } from "../src/ops/elementwise.ts";
import { relu, tanh } from "../src/ops/activation.ts";
import { layerNorm } from "../src/ops/layernorm.ts";
import { matmul } from "../src/ops/matmul.ts";
import { Tape } from "../src/autodiff/tape.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { assertClose, checkOp, gpu } from "./helpers.ts";

/** float64 LayerNorm(relu(x·W + b)) for x [N, K], W [K, D]. */
function compositeRef(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  gamma: Float64Array,
  beta: Float64Array,
  [N, K, D]: number[],
  eps: number,
): Float64Array {
  const y = new Float64Array(N * D);
  const h = new Float64Array(D);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < D; j++) {
      let s = b[j];
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[k * D + j];
      h[j] = Math.max(s, 0);
    }
    const mean = h.reduce((a, v) => a + v, 0) / D;
    const variance = h.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let j = 0; j < D; j++) y[i * D + j] = (h[j] - mean) * rstd * gamma[j] + beta[j];
  }
  return y;
}

Deno.test("the tape differentiates LayerNorm(relu(x·W + b)) for x, W, b, gamma and beta", async () => {
  const [N, K, D] = [9, 13, 70]; // D above the 64-wide workgroup, all ragged
  const eps = 1e-5;
  await checkOp({
    name: "LayerNorm(relu(x·W + b))",
    inputs: [{ shape: [N, K] }, { shape: [K, D] }, { shape: [D] }, { shape: [D] }, {
      shape: [D],
    }],
    forward: async (tape, x, w, b, gamma, beta) => {
      const h = await relu(await biasAdd(await matmul(x, w, { tape }), b, { tape }), { tape });
      return await layerNorm(h, gamma, beta, { eps, tape });
    },
    reference: (x, w, b, gamma, beta) => compositeRef(x, w, b, gamma, beta, [N, K, D], eps),
    // The f32 matmul (K = 13 terms of size ~1) feeds a normalisation whose outputs are O(1):
    // errors of ~1e-6 relative to the row's spread.
    forwardTol: { atol: 2e-5, rtol: 1e-5 },
    // Gradients chain four ops; through the 1/std of LayerNorm the f32 errors grow to ~1e-5.
    gradTol: { atol: 2e-4, rtol: 1e-3 },
  });
});

Deno.test("an activation used twice receives both gradient contributions", async () => {
  // y = h + h ⊙ h with h = tanh(x): dy/dx = (1 + 2h)(1 - h²). A tape that overwrote instead of
  // accumulating, or ran a consumer's step once, would give (1 - h²) or 2h(1 - h²).
  await checkOp({
    name: "tanh(x) + tanh(x)²",
    inputs: [{ shape: [5, 67] }],
    forward: async (tape, x) => {
      const h = await tanh(x, { tape });
      return await add(h, await mul(h, h, { tape }), { tape });
    },
    reference: (x) => x.map((v) => Math.tanh(v) + Math.tanh(v) ** 2),
    forwardTol: { atol: 1e-6, rtol: 1e-6 },
  });
});

Deno.test("a reshaped view shares its source's gradient (no backward step needed)", async () => {
  const g = await gpu();
  const x = Tensor.from(g, [1, -2, 3, -4, 5, 6], [2, 3]);
  const tape = new Tape();
  tape.watch(x);
  const y = await relu(x.reshape([3, 2]), { tape });
  await tape.backward(y.reshape([6]), [1, 1, 1, 1, 1, 1]);
  assertClose(await tape.grad(x)!.read(), [1, 0, 1, 0, 1, 1], { atol: 0, rtol: 0 }, "dx");
  tape.dispose();
});

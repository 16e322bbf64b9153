import { matmul } from "../src/ops/matmul.ts";
import { checkOp } from "./helpers.ts";

/** float64 reference of op(A)·op(B) for 2-D or batched operands. */
function matmulRef(
  a: Float64Array,
  b: Float64Array,
  [batch, M, N, K]: number[],
  transA: boolean,
  transB: boolean,
  batchedA = true,
  batchedB = true,
): Float64Array {
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const oa = batchedA ? z * M * K : 0, ob = batchedB ? z * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[oa + k * M + i] : a[oa + i * K + k];
          const bv = transB ? b[ob + j * K + k] : b[ob + k * N + j];
          s += av * bv;
        }
        c[z * M * N + i * N + j] = s;
      }
    }
  }
  return c;
}

// Shapes that are not multiples of any tile, plus tiny and degenerate ones.
const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 48, 40], [
  70,
  129,
  65,
]];

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    Deno.test(`matmul transA=${transA} transB=${transB} matches float64 and finite differences`, async () => {
      for (const [M, N, K] of SHAPES) {
        await checkOp({
          name: `matmul ${M}x${N}x${K}`,
          inputs: [{ shape: transA ? [K, M] : [M, K] }, { shape: transB ? [N, K] : [K, N] }],
          forward: (tape, a, b) => matmul(a, b, { transA, transB, tape }),
          reference: (a, b) => matmulRef(a, b, [1, M, N, K], transA, transB),
          // K up to 129 products of unit normals accumulated in f32: error ~ sqrt(K)·2^-24·|terms|.
          forwardTol: { atol: 2e-5 * Math.sqrt(K), rtol: 1e-5 },
          gradTol: { atol: 1e-4 * Math.sqrt(Math.max(M, N, K)), rtol: 1e-4 },
        });
      }
    });
  }
}

Deno.test("batched matmul (attention shapes) matches float64, with gradients", async () => {
  const [batch, M, N, K] = [3, 11, 13, 8];
  await checkOp({
    name: "batched matmul A·Bᵀ",
    inputs: [{ shape: [batch, M, K] }, { shape: [batch, N, K] }],
    forward: (tape, a, b) => matmul(a, b, { transB: true, tape }),
    reference: (a, b) => matmulRef(a, b, [batch, M, N, K], false, true),
  });
  await checkOp({
    name: "batched matmul with a broadcast 2-D B (no gradient into it)",
    inputs: [{ shape: [batch, M, K] }, { shape: [K, N], grad: false }],
    forward: (tape, a, b) => matmul(a, b, { tape }),
    reference: (a, b) => matmulRef(a, b, [batch, M, N, K], false, false, true, false),
  });
});

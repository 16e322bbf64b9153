import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { matmul, matmulInto, matmulPlan } from "../src/ops/matmul.ts";
import { assertClose, checkOp, randn } from "./helpers.ts";

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

// Shapes that are not multiples of any tile, plus tiny and degenerate ones. Shapes with K and N
// multiples of 4 (and M for transA) run the register-blocked kernel (32x16 blocks on llvmpipe,
// 8x8 on GPUs), the others the naive one: [64, 48, 40] fills whole blocks along N, [68, 36, 20]
// and [70, 132, 68] leave ragged row and column blocks (70 is not a multiple of 4, so transA
// falls back to naive there), [5, 4, 8] is smaller than one block.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 9],
  [64, 48, 40],
  [70, 129, 65],
  [5, 4, 8],
  [68, 36, 20],
  [70, 132, 68],
];

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

for (const variant of ["naive", "blocked"] as const) {
  Deno.test(`matmulInto ${variant}: all transposes, alpha, beta accumulation, batch broadcast`, async () => {
    const gpu = await getGpu();
    const [batch, M, N, K] = [2, 36, 20, 12];
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randn(batch * M * K, 11);
        const b = randn(K * N, 12); // 2-D: broadcast over the batch (stride 0)
        const c0 = randn(batch * M * N, 13);
        const ta = Tensor.from(gpu, a, transA ? [batch, K, M] : [batch, M, K]);
        const tb = Tensor.from(gpu, b, transB ? [N, K] : [K, N]);
        const tc = Tensor.from(gpu, c0, [batch, M, N]);
        await matmulInto(gpu, ta, tb, tc, { transA, transB, alpha: 0.5, beta: 2, variant });
        const got = await tc.read();
        const ref = matmulRef(
          Float64Array.from(a),
          Float64Array.from(b),
          [batch, M, N, K],
          transA,
          transB,
          true,
          false,
        );
        const want = ref.map((v, i) => 0.5 * v + 2 * c0[i]);
        // K = 12 products of unit normals in f32 plus the scaled prior: errors ~1e-6.
        assertClose(got, want, { atol: 1e-5, rtol: 1e-5 }, `${variant} tA=${transA} tB=${transB}`);
        for (const t of [ta, tb, tc]) t.destroy();
      }
    }
  });
}

Deno.test("matmulPlan picks the blocked kernel only where its vec4 preconditions hold", async () => {
  const gpu = await getGpu();
  const t = (shape: number[]) => Tensor.zeros(gpu, shape);
  assertEquals(matmulPlan(gpu, t([8, 12]), t([12, 16])).variant, "blocked");
  assertEquals(matmulPlan(gpu, t([8, 13]), t([13, 16])).variant, "naive"); // K % 4
  assertEquals(matmulPlan(gpu, t([8, 12]), t([12, 18])).variant, "naive"); // N % 4
  assertEquals(matmulPlan(gpu, t([12, 6]), t([12, 16]), { transA: true }).variant, "naive"); // M % 4
  assertThrows(() => matmulPlan(gpu, t([8, 13]), t([13, 16]), { variant: "blocked" }), RangeError);
});

import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { getGpu } from "../src/gpu/device.ts";
import { Tensor } from "../src/gpu/tensor.ts";
import { matmul, MATMUL_K4_PER_LAUNCH, matmulInto, matmulPlan } from "../src/ops/matmul.ts";
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

// Shapes that are not multiples of any tile, plus tiny and degenerate ones. All but [1, 1, 1]
// (operands under one vec4: the naive kernel) run the register-blocked kernel (32x16 blocks on
// llvmpipe, 8x8 on GPUs), which reads an operand as vec4 where its stored rows hold whole vec4s
// and as scalars otherwise, and masks a ragged last 4-step of K. Between them the shapes give
// every combination of M, N, K being multiples of 4 or not: [64, 48, 40] fills whole blocks along
// N, [68, 36, 20] and [70, 132, 68] leave ragged row and column blocks, [5, 4, 8] is smaller than
// one block, [37, 20, 13] has only N aligned, [36, 22, 12] only N ragged, [3, 5, 7], [17, 33, 9]
// and [70, 129, 65] nothing aligned.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 9],
  [64, 48, 40],
  [70, 129, 65],
  [5, 4, 8],
  [68, 36, 20],
  [70, 132, 68],
  [37, 20, 13],
  [36, 22, 12],
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
    // Aligned, then ragged (batch strides M·K and M·N not multiples of 4 either).
    for (const [batch, M, N, K] of [[2, 36, 20, 12], [2, 37, 22, 13]]) {
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
          assertClose(
            got,
            want,
            { atol: 1e-5, rtol: 1e-5 },
            `${variant} ${M}x${N}x${K} tA=${transA} tB=${transB}`,
          );
          for (const t of [ta, tb, tc]) t.destroy();
        }
      }
    }
  });
}

Deno.test("matmulPlan picks the blocked kernel for every shape but tiny operands", async () => {
  const gpu = await getGpu();
  const t = (shape: number[]) => Tensor.zeros(gpu, shape);
  assertEquals(matmulPlan(gpu, t([8, 12]), t([12, 16])).variant, "blocked");
  assertEquals(matmulPlan(gpu, t([8, 13]), t([13, 16])).variant, "blocked"); // K % 4
  assertEquals(matmulPlan(gpu, t([8, 12]), t([12, 18])).variant, "blocked"); // N % 4
  assertEquals(matmulPlan(gpu, t([12, 6]), t([12, 16]), { transA: true }).variant, "blocked");
  assertEquals(matmulPlan(gpu, t([1, 3]), t([3, 2])).variant, "naive"); // A under one vec4
  assertThrows(() => matmulPlan(gpu, t([1, 3]), t([3, 2]), { variant: "blocked" }), RangeError);
});

Deno.test("blocked matmul splits a long K into accumulating launches (ragged, transA, beta)", async () => {
  // dW = Xᵀ·dY shape: K = batch·seq rows, longer than one launch's k range, and not a multiple
  // of 4. The float64 reference sums K = 32777 products of uniform(-1, 1) pairs: the f32 result
  // has error ~ sqrt(K)·2^-24·sqrt(K/9) ~ 1e-3 at worst over the launch splits; atol 5e-3.
  const gpu = await getGpu();
  const [M, N, K] = [6, 5, 4 * MATMUL_K4_PER_LAUNCH + 9];
  const a = Float32Array.from(randn(K * M, 21)).map((v) => Math.tanh(v));
  const b = Float32Array.from(randn(K * N, 22)).map((v) => Math.tanh(v));
  const c0 = randn(M * N, 23);
  const ta = Tensor.from(gpu, a, [K, M]);
  const tb = Tensor.from(gpu, b, [K, N]);
  const tc = Tensor.from(gpu, c0, [M, N]);
  assertEquals(matmulPlan(gpu, ta, tb, { transA: true }).variant, "blocked");
  await matmulInto(gpu, ta, tb, tc, { transA: true, alpha: 2, beta: 1 });
  const ref = matmulRef(Float64Array.from(a), Float64Array.from(b), [1, M, N, K], true, false);
  assertClose(await tc.read(), ref.map((v, i) => 2 * v + c0[i]), { atol: 5e-3, rtol: 1e-5 });
  for (const t of [ta, tb, tc]) t.destroy();
});

Deno.test("linear: x·op(W) + b with the bias fused into the kernel's store, with gradients", async () => {
  const { linear } = await import("../src/ops/matmul.ts");
  // Ragged shapes on the blocked kernel and one tiny shape on the reference path. (A K long
  // enough to split across launches is too slow to check here; the kernel adds the bias only in
  // the launch with k4Begin == 0.)
  const cases: [number, number, number][] = [[37, 20, 13], [64, 48, 40], [2, 1, 1]];
  for (const [M, N, K] of cases) {
    for (const transB of [false, true]) {
      await checkOp({
        name: `linear ${M}x${N}x${K} transB=${transB}`,
        inputs: [{ shape: [M, K] }, { shape: transB ? [N, K] : [K, N] }, { shape: [N] }],
        forward: (tape, x, w, b) => linear(x, w, b, { transB, tape }),
        reference: (x, w, b) => {
          const y = matmulRef(x, w, [1, M, N, K], false, transB);
          for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) y[i * N + j] += b[j];
          return y;
        },
        forwardTol: { atol: 2e-5 * Math.sqrt(K), rtol: 1e-5 },
        gradTol: { atol: 1e-4 * Math.sqrt(Math.max(M, N, K)), rtol: 1e-4 },
      });
    }
  }
});
